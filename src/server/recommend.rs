//! "More like these, less like that" (`POST /api/recommend`) and the query vector itself
//! (`POST /api/embed`), for pages that refine a search and systems that keep their own
//! store.

use serde::Deserialize;

use super::*;
use crate::engine::Example;

/// A filter's value in JSON: one value, or any of several.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum FilterValue {
    One(String),
    Any(Vec<String>),
}

/// `POST /api/recommend` as JSON.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecommendIn {
    /// Ids of liked items (left out of the results).
    #[serde(default)]
    pub like: Vec<String>,
    /// Ids of disliked items (left out of the results).
    #[serde(default)]
    pub unlike: Vec<String>,
    /// Liked photos' vectors, as `/api/embed` (or `/api/search` with `vector=true`) gives them.
    #[serde(default)]
    pub like_vectors: Vec<Vec<f32>>,
    #[serde(default)]
    pub unlike_vectors: Vec<Vec<f32>>,
    /// Number of results, 1..50 (default 5).
    pub k: Option<usize>,
    /// Keep only items with these values: `{"column": "value"}` or `{"column": ["a", "b"]}`.
    #[serde(default)]
    pub filters: BTreeMap<String, FilterValue>,
    /// 0..4: how much colour counts against shape (default: the index's weight).
    pub colour: Option<f32>,
    /// -1..1: leave out weaker results.
    pub min_score: Option<f32>,
    /// 0..1: leave out results with at least this cosine to a better one.
    pub collapse: Option<f32>,
    /// 0..0.9: the predicted article type's share of the score.
    pub category: Option<f32>,
}

#[utoipa::path(
    post,
    path = "/api/recommend",
    request_body(content(
        (RecommendIn = "application/json"),
        (String = "multipart/form-data"),
    ), description = "JSON as `RecommendIn`, or a multipart form with fields `like` / `unlike` (item ids, repeatable), `like_image` / `unlike_image` (photos), `like_url` / `unlike_url` (photos on the web), and the options of `/api/search`."),
    responses(
        (status = 200, body = SearchOut, description = "items like the liked examples and unlike the disliked ones; the examples themselves left out"),
        (status = 400, body = ErrorBody, description = "no liked example, a bad vector or option, or malformed JSON"),
        (status = 404, body = ErrorBody, description = "an unknown item id"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "too many searches at once"),
    )
)]
pub(super) async fn recommend(
    State(state): State<Arc<AppState>>,
    req: axum::extract::Request,
) -> Result<Json<SearchOut>, AppError> {
    use axum::extract::FromRequest;
    let t0 = Instant::now();
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/"));
    let (like, unlike, query) = if multipart {
        let form = QueryForm::read(&state, Multipart::from_request(req, &state).await).await?;
        form.only(&[Role::Like, Role::Unlike], "give 'like' / 'unlike' ids, photos or URLs")?;
        let query = form.query(&state)?;
        let (mut like, mut unlike) = (Vec::new(), Vec::new());
        for (role, _, source) in &form.sources {
            let example = match source {
                Source::Id(id) => Example::Item(id.clone()),
                photo => Example::Vector(state.embed(state.photo(photo).await?).await?),
            };
            if *role == Role::Like { like.push(example) } else { unlike.push(example) }
        }
        (like, unlike, query)
    } else {
        // JSON whatever the content type says (`curl -d` sends it as a form): the body
        // has already been read whole (`whole_body`).
        let bytes = Bytes::from_request(req, &state).await.map_err(|e| {
            AppError::BadRequest(format!("the body could not be read: {}", e.body_text()))
        })?;
        let body: RecommendIn = serde_json::from_slice(&bytes).map_err(|e| {
            AppError::BadRequest(format!("expected a JSON object (or a multipart form): {e}"))
        })?;
        let mut specs = Vec::new();
        for (column, value) in &body.filters {
            match value {
                FilterValue::One(v) => specs.push(format!("{column}={v}")),
                FilterValue::Any(vs) => specs.extend(vs.iter().map(|v| format!("{column}={v}"))),
            }
        }
        let query = Query {
            k: match body.k {
                Some(k) => number("k", Some(&k.to_string()), 5, API_MAX_K)?,
                None => 5,
            },
            filter: filter(&state, &specs)?,
            colour: checked("colour", body.colour, 0.0, MAX_COLOUR)?,
            min_score: checked("min_score", body.min_score, -1.0, 1.0)?,
            collapse: checked("collapse", body.collapse, 0.0, 1.0)?,
            category: checked("category", body.category, 0.0, MAX_CATEGORY)?,
            ..Query::default()
        };
        let examples = |ids: Vec<String>, vectors: Vec<Vec<f32>>| {
            ids.into_iter()
                .map(Example::Item)
                .chain(vectors.into_iter().map(Example::Vector))
                .collect::<Vec<_>>()
        };
        (examples(body.like, body.like_vectors), examples(body.unlike, body.unlike_vectors), query)
    };
    let engine = state.engine.clone();
    let answer = state.pool.run(move || engine.recommend(&like, &unlike, &query)).await??;
    Ok(Json(SearchOut::of(answer, t0)))
}

fn checked(name: &str, v: Option<f32>, lo: f32, hi: f32) -> Result<Option<f32>, AppError> {
    fraction(name, v.map(|x| x.to_string()).as_deref(), lo, hi)
}

impl AppState {
    /// The vector a photo is searched by ([`crate::engine::Engine::compared_vector`]),
    /// embedded on the pool ([`AppState::with_photo`]).
    async fn embed(&self, photo: Photo) -> Result<Vec<f32>, AppError> {
        let (vector, timing) = self
            .with_photo(photo, |engine, bytes| {
                let (embedded, timing) = engine.embed_photo(bytes, &Query::default())?;
                Ok((engine.compared_vector(&embedded, &Query::default())?, timing))
            })
            .await?;
        self.metrics.stages(&timing);
        Ok(vector)
    }
}

/// A query photo's vector.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EmbedOut {
    /// The index's model.
    pub model: String,
    /// Length of `vector`.
    pub dimension: usize,
    /// The vector the photo is compared with the catalogue by: its dot product with an
    /// item's stored vector is their similarity (the search's score before re-ranking).
    /// The model's embedding, then (for indexes that weigh colour) the colour histogram at
    /// the index's weight, a unit vector; for a snapshot (and any photo searched by shape
    /// alone) the colour part is zero, as its search leaves colour out. `/api/recommend`
    /// takes it back in `like_vectors` / `unlike_vectors`.
    pub vector: Vec<f32>,
    /// Of `vector`, the model's own embedding (scaled): its first `model_dimension` numbers.
    pub model_dimension: usize,
    /// What the photo looks like, as `/api/search` says.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub predicted: Vec<crate::category::Prediction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub garment_box: Option<Crop>,
    pub took_ms: f64,
}

#[utoipa::path(
    post,
    path = "/api/embed",
    request_body(content_type = "multipart/form-data", description = "Fields: `image` (the photo) or `url`; `crop`, `resize`, `locate` as for `/api/search`."),
    responses(
        (status = 200, body = EmbedOut),
        (status = 400, body = ErrorBody), (status = 408, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody),
    )
)]
pub(super) async fn embed(
    State(state): State<Arc<AppState>>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<EmbedOut>, AppError> {
    let t0 = Instant::now();
    let form = QueryForm::read(&state, form).await?;
    form.only(&[Role::Query], "give one 'image' or 'url'")?;
    let source = match form.sources.as_slice() {
        [(_, _, source @ (Source::Image(_) | Source::Url(_)))] => source,
        _ => return Err(AppError::BadRequest("give one 'image' or 'url' to embed".into())),
    };
    let query = form.query(&state)?;
    let photo = state.photo(source).await?;
    let (answer, vector) = state.search_photo(photo, query, true).await?;
    let vector = vector.unwrap_or_default();
    let info = state.engine.info();
    Ok(Json(EmbedOut {
        model: info.model.name.clone(),
        dimension: vector.len(),
        model_dimension: info.model.dim.min(vector.len()),
        vector,
        predicted: answer.predicted,
        garment_box: answer.garment,
        took_ms: t0.elapsed().as_secs_f64() * 1e3,
    }))
}
