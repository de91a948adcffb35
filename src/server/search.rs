//! Searching: by an uploaded photo (`POST /api/search`) or by an indexed item
//! (`GET /api/items/{id}/similar`).

use super::*;

/// A search result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HitOut {
    pub id: String,
    /// Cosine similarity, 1 = identical.
    pub score: f32,
    pub metadata: BTreeMap<String, String>,
    pub image: String,
    pub thumbnail: String,
}

impl From<Hit> for HitOut {
    fn from(h: Hit) -> Self {
        let (image, thumbnail) = urls(&h.id);
        HitOut { id: h.id, score: h.score, metadata: h.metadata, image, thumbnail }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchOut {
    pub results: Vec<HitOut>,
    /// What the query looks like, per column the index can predict ("Looks like: Casual
    /// Shoes, 92%"): the model's class heads over the catalogue's values, or a vote of the
    /// nearest items' labels (`source`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub predicted: Vec<crate::category::Prediction>,
    /// The square of the photo (pixels, EXIF orientation applied) the search used, when
    /// the garment was found in a snapshot and searched by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub garment_box: Option<Crop>,
    /// Server time for the whole request, in milliseconds.
    pub took_ms: f64,
}

impl SearchOut {
    fn of(answer: crate::engine::Answer, t0: Instant) -> Self {
        Self {
            results: answer.hits.into_iter().map(HitOut::from).collect(),
            predicted: answer.predicted,
            garment_box: answer.garment,
            took_ms: t0.elapsed().as_secs_f64() * 1e3,
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/search",
    request_body(content_type = "multipart/form-data", description = "Fields: `image` (the photo, required), `k` (1..50, default 5), `crop` (`x,y,w,h` in pixels of the photo), `filter` (repeatable `column=value`), `resize` (`auto`: pad studio shots, crop snapshots; `pad`; `crop`), `colour` (0..4: how much colour counts against shape; default: the index's weight), `min_score` (-1..1: leave out weaker results), `collapse` (0..1: leave out results with at least this cosine to a better one), `trained` (0..1: the trained projection's share of the score; 0: not used; default: 0.4 when the index has one, except for snapshots; a trained search weighs colour 1.0 unless `colour` says), `category` (0..0.9: the predicted article type's share of the score, colour's scaled alike; 0: by similarity alone; default 0.3 with a model that predicts categories), `locate` (`auto`: search a snapshot by the garment the model finds; `on`: any photo; `off`)."),
    responses(
        (status = 200, body = SearchOut),
        (status = 400, body = ErrorBody, description = "bad parameter or unusable photo"),
        (status = 408, body = ErrorBody, description = "the upload did not arrive within the body timeout (30 s plus its size at 32 KB/s)"),
        (status = 413, body = ErrorBody, description = "upload over the size limit"),
        (status = 415, body = ErrorBody, description = "not an image"),
        (status = 503, body = ErrorBody, description = "too many searches at once (after waiting up to 2 s for a slot); see Retry-After"),
    )
)]
pub(super) async fn search(
    State(state): State<Arc<AppState>>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<SearchOut>, AppError> {
    let t0 = Instant::now();
    let mut form = form.map_err(|e| {
        AppError::BadRequest(format!("expected a multipart/form-data upload: {}", e.body_text()))
    })?;
    let mut image: Option<Bytes> = None;
    let (mut k, mut crop, mut filters, mut resize) = (None, None, Vec::new(), QueryResize::Auto);
    let (mut colour_weight, mut min_score, mut collapse, mut trained) = (None, None, None, None);
    let (mut category, mut locate) = (None, None);
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(&e, state.max_upload)),
        };
        let name = field.name().unwrap_or("").to_string();
        let data = field.bytes().await.map_err(|e| multipart_error(&e, state.max_upload))?;
        let text = || String::from_utf8_lossy(&data).trim().to_string();
        match name.as_str() {
            "image" => image = Some(data.clone()),
            "k" => k = Some(text()),
            "crop" if !text().is_empty() => {
                crop = Some(text().parse::<Crop>().map_err(AppError::BadRequest)?);
            }
            "crop" => {}
            "filter" => filters.push(text()),
            "resize" => resize = text().parse::<QueryResize>().map_err(AppError::BadRequest)?,
            "colour" => colour_weight = fraction("colour", Some(&text()), 0.0, MAX_COLOUR)?,
            "min_score" => min_score = fraction("min_score", Some(&text()), -1.0, 1.0)?,
            "collapse" => collapse = fraction("collapse", Some(&text()), 0.0, 1.0)?,
            "trained" => trained = fraction("trained", Some(&text()), 0.0, 1.0)?,
            "category" => category = fraction("category", Some(&text()), 0.0, MAX_CATEGORY)?,
            "locate" => locate = locate_flag(&text())?,
            other => return Err(AppError::BadRequest(format!("unknown form field '{other}'"))),
        }
    }
    let image = image.ok_or_else(|| {
        AppError::BadRequest("missing the 'image' field (the photo to search with)".into())
    })?;
    if image.is_empty() {
        return Err(AppError::BadRequest("the uploaded photo is an empty file".into()));
    }
    if image.len() > state.max_upload {
        return Err(too_large(state.max_upload));
    }
    let query = Query {
        k: number("k", k.as_deref(), 5, API_MAX_K.min(MAX_K))?,
        filter: filter(&state, &filters)?,
        crop,
        resize,
        colour: colour_weight,
        min_score,
        collapse,
        trained,
        category,
        locate,
        ..Query::default()
    };
    let permit = state.slot().await?;
    let engine = state.engine.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        engine.search_photo(&image, &query)
    })
    .await
    .map_err(|e| AppError::Internal(format!("search task failed: {e}")))??;
    Ok(Json(SearchOut::of(answer, t0)))
}

#[utoipa::path(get, path = "/api/items/{id}/similar",
    params(("id" = String, Path, description = "item id"),
        ("k" = Option<usize>, Query, description = "number of results, 1..50 (default 5)"),
        ("filter" = Option<Vec<String>>, Query, description = "column=value, repeatable"),
        ("colour" = Option<f32>, Query, description = "0..4: how much colour counts against shape (default: the index's weight)"),
        ("min_score" = Option<f32>, Query, description = "-1..1: leave out weaker results"),
        ("collapse" = Option<f32>, Query, description = "0..1: leave out results with at least this cosine to a better one"),
        ("trained" = Option<f32>, Query, description = "0..1: the trained projection's share of the score (0: not used; default 0.4 when the index has one, with colour 1.0 unless `colour` says)"),
        ("category" = Option<f32>, Query, description = "0..0.9: the predicted article type's share of the score (0: by similarity alone; default 0.3 with a model that predicts categories)")),
    responses((status = 200, body = SearchOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn similar(
    State(state): State<Arc<AppState>>,
    Id(id): Id,
    RawQuery(raw): RawQuery,
) -> Result<Json<SearchOut>, AppError> {
    let t0 = Instant::now();
    let p = params(raw)?;
    let q = Query {
        k: number("k", p.k.as_deref(), 5, API_MAX_K)?,
        filter: filter(&state, &p.filters)?,
        colour: fraction("colour", p.colour.as_deref(), 0.0, MAX_COLOUR)?,
        min_score: fraction("min_score", p.min_score.as_deref(), -1.0, 1.0)?,
        collapse: fraction("collapse", p.collapse.as_deref(), 0.0, 1.0)?,
        trained: fraction("trained", p.trained.as_deref(), 0.0, 1.0)?,
        category: fraction("category", p.category.as_deref(), 0.0, MAX_CATEGORY)?,
        ..Query::default()
    };
    let answer = state.engine.similar_answer(&id, &q)?;
    Ok(Json(SearchOut::of(answer, t0)))
}
