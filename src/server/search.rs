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
    /// True when the best result scores below the model's calibrated floor: the catalogue
    /// has no close match, and the results are only the nearest ("no close match; here
    /// are the nearest"). Always false for item queries and models without a floor.
    pub no_close_match: bool,
    /// With `all_garments=true`: every garment found in the photo, largest first, each
    /// with its own results (the top-level `results` stay the photo's own search).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub garments: Option<Vec<GarmentOut>>,
    /// The query photo's vector (as `/api/embed` gives it), when the form asked with
    /// `vector=true`: `/api/recommend` takes it back as `like_vectors`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    /// Server time for the whole request, in milliseconds.
    pub took_ms: f64,
}

impl SearchOut {
    pub(super) fn of(answer: crate::engine::Answer, t0: Instant) -> Self {
        Self {
            results: answer.hits.into_iter().map(HitOut::from).collect(),
            predicted: answer.predicted,
            garment_box: answer.garment,
            no_close_match: answer.no_close_match,
            garments: None,
            vector: None,
            took_ms: t0.elapsed().as_secs_f64() * 1e3,
        }
    }

    pub(super) fn of_look(look: crate::engine::Look, t0: Instant) -> Self {
        let garments = look.garments.into_iter().map(GarmentOut::from).collect();
        Self { garments: Some(garments), ..Self::of(look.answer, t0) }
    }
}

/// One garment of a photo searched with `all_garments=true`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GarmentOut {
    /// top, outerwear, bottom, dress, shoes, bag or hat.
    pub kind: crate::garment::Kind,
    /// The garment finder's mean probability of that kind over the garment's cells.
    pub confidence: f32,
    /// Where the garment is, in pixels of the photo (EXIF orientation applied).
    #[serde(rename = "box")]
    pub region: Crop,
    /// The square around it that was searched (null: the whole photo, when it is the
    /// garment the photo's own search was about and that search used the whole photo).
    pub searched_box: Option<Crop>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub predicted: Vec<crate::category::Prediction>,
    pub results: Vec<HitOut>,
    pub no_close_match: bool,
}

impl From<crate::engine::GarmentAnswer> for GarmentOut {
    fn from(g: crate::engine::GarmentAnswer) -> Self {
        Self {
            kind: g.kind,
            confidence: g.confidence,
            region: g.region,
            searched_box: g.answer.garment,
            predicted: g.answer.predicted,
            results: g.answer.hits.into_iter().map(HitOut::from).collect(),
            no_close_match: g.answer.no_close_match,
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/search",
    request_body(content_type = "multipart/form-data", description = "Fields: `image` (the photo) or `url` (a photo on the web: http(s), an image content type, at most the upload limit, 10 s, 5 redirects; loopback, private, link-local and metadata addresses are refused unless the server allows them with `--fetch-allow`), `k` (1..50, default 5), `crop` (`x,y,w,h` in pixels of the photo), `filter` (repeatable `column=value`), `resize` (`auto`: pad studio shots, crop snapshots; `pad`; `crop`), `colour` (0..4: how much colour counts against shape; default: the index's weight), `min_score` (-1..1: leave out weaker results), `collapse` (0..1: leave out results with at least this cosine to a better one), `trained` (0..1: the trained projection's share of the score; 0: not used; default: 0.4 when the index has one, except for snapshots; a trained search weighs colour 1.0 unless `colour` says), `category` (0..0.9: the predicted article type's share of the score, colour's scaled alike; 0: by similarity alone; default 0.3 with a model that predicts categories), `locate` (`auto`: search a snapshot by the garment the model finds; `on`: any photo; `off`), `flip` (`true`: embed the photo with its left-right mirror too, averaged; `false`: not; default: per the measured default for snapshots), `keep_nearest` (default `true`: with category ranking, a snapshot's last result is the most similar item the results before it do not show; `false`: every result by blended score), `vector` (`true`: give the query's vector back, for `/api/recommend`'s `like_vectors`), `all_garments` (`true`: find every garment of the photo (top, outerwear, bottom, dress, shoes, bag, hat) and search each: `garments`, largest first, each with its `kind`, `confidence`, `box` (pixels of the photo), `predicted` and `results`; the top-level `results` stay the photo's own search; not with `crop`)."),
    responses(
        (status = 200, body = SearchOut),
        (status = 400, body = ErrorBody, description = "bad parameter, unusable photo, or a URL that is refused (its address), answered with an error, or redirected too often"),
        (status = 408, body = ErrorBody, description = "the upload stopped (no byte for the idle timeout, 10 s) or arrived slower than the minimum rate (32 KB/s after 10 s); the connection is closed"),
        (status = 413, body = ErrorBody, description = "upload (or download) over the size limit"),
        (status = 415, body = ErrorBody, description = "not an image"),
        (status = 502, body = ErrorBody, description = "the URL could not be fetched (unreachable, or too slow)"),
        (status = 503, body = ErrorBody, description = "the search queue is full, the search waited past the queue wait, or the memory budget is spent; see Retry-After"),
    )
)]
pub(super) async fn search(
    State(state): State<Arc<AppState>>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<SearchOut>, AppError> {
    let t0 = Instant::now();
    let form = QueryForm::read(&state, form).await?;
    form.only(&[Role::Query], "a search takes one 'image' or 'url'")?;
    let source = match form.sources.as_slice() {
        [(_, _, source @ (Source::Image(_) | Source::Url(_)))] => source,
        [] => {
            return Err(AppError::BadRequest(
                "missing the 'image' field (the photo to search with) or a 'url'".into(),
            ));
        }
        [(_, _, Source::Id(_))] => {
            return Err(AppError::BadRequest(
                "a search takes a photo; search by an item with GET /api/items/{id}/similar".into(),
            ));
        }
        _ => {
            return Err(AppError::BadRequest(
                "a search takes one 'image' or 'url'; several go to /api/search/batch".into(),
            ));
        }
    };
    let query = form.query(&state)?;
    let photo = state.photo(source).await?;
    if form.all_garments {
        let (look, vector) = state.search_look(photo, query, form.vector).await?;
        return Ok(Json(SearchOut { vector, ..SearchOut::of_look(look, t0) }));
    }
    let (answer, vector) = state.search_photo(photo, query, form.vector).await?;
    Ok(Json(SearchOut { vector, ..SearchOut::of(answer, t0) }))
}

/// Most queries in one batch.
pub const MAX_BATCH: usize = 32;

/// One query's answer in a batch: its results, or why it failed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum BatchItem {
    Results(SearchOut),
    Error(ErrorBody),
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchOut {
    /// One per query, in the order the form gave them.
    pub batches: Vec<BatchItem>,
    /// Server time for the whole request, in milliseconds.
    pub took_ms: f64,
}

#[utoipa::path(
    post,
    path = "/api/search/batch",
    request_body(content_type = "multipart/form-data", description = "Several queries in one request, each an `image` part, a `url` field or an `id` field (an indexed item: its similar items), at most 32 in all, answered in the order given; the options of `/api/search` (`k`, `filter`, `colour`, `all_garments`, ...) apply to every query (`all_garments` to the photos, not the ids)."),
    responses(
        (status = 200, body = BatchOut, description = "one entry per query: `{\"results\": [...]}` or `{\"error\": \"...\"}`; one query failing does not fail the others"),
        (status = 400, body = ErrorBody, description = "no query, more than 32, or a bad option"),
        (status = 408, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "too many searches at once"),
    )
)]
pub(super) async fn batch(
    State(state): State<Arc<AppState>>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<BatchOut>, AppError> {
    let t0 = Instant::now();
    let form = QueryForm::read(&state, form).await?;
    form.only(&[Role::Query], "a batch takes 'image', 'url' and 'id' queries")?;
    if form.sources.is_empty() {
        return Err(AppError::BadRequest(
            "the batch is empty: give 'image' parts, 'url' or 'id' fields".into(),
        ));
    }
    if form.sources.len() > MAX_BATCH {
        return Err(AppError::BadRequest(format!(
            "{} queries in one batch; at most {MAX_BATCH} are taken",
            form.sources.len()
        )));
    }
    let query = form.query(&state)?;
    // URLs are fetched together (each within the fetch time limit, all within the
    // server's fetch places), so that a batch of slow ones takes one limit, not one per
    // URL. The fetches are part of this request's future, not tasks of their own: when
    // the client goes away they are dropped with it.
    let fetches = futures_util::future::join_all(form.sources.iter().map(|(_, _, source)| {
        let state = &state;
        async move {
            match source {
                Source::Url(_) => Some(state.photo(source).await),
                _ => None,
            }
        }
    }))
    .await;
    let mut batches = Vec::with_capacity(form.sources.len());
    // A photo's answer: with `all_garments`, every garment's.
    let photo_out = |photo, t| {
        let (state, query) = (&state, query.clone());
        async move {
            if form.all_garments {
                let (look, vector) = state.search_look(photo, query, form.vector).await?;
                return Ok(SearchOut { vector, ..SearchOut::of_look(look, t) });
            }
            let (a, vector) = state.search_photo(photo, query, form.vector).await?;
            Ok::<_, AppError>(SearchOut { vector, ..SearchOut::of(a, t) })
        }
    };
    for ((_, _, source), fetched) in form.sources.iter().zip(fetches) {
        let t = Instant::now();
        let answer = match (source, fetched) {
            (Source::Id(id), _) => {
                state.search_similar(id.clone(), query.clone()).await.map(|a| SearchOut::of(a, t))
            }
            (_, Some(Ok(photo))) => photo_out(photo, t).await,
            (_, Some(Err(e))) => Err(e),
            (upload, None) => match state.photo(upload).await {
                Ok(photo) => photo_out(photo, t).await,
                Err(e) => Err(e),
            },
        };
        batches.push(match answer {
            Ok(out) => BatchItem::Results(out),
            // A busy server fails the whole batch: the rest would be refused alike.
            Err(AppError::Busy) => return Err(AppError::Busy),
            Err(e) => BatchItem::Error(ErrorBody { error: e.message() }),
        });
    }
    Ok(Json(BatchOut { batches, took_ms: t0.elapsed().as_secs_f64() * 1e3 }))
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
    responses((status = 200, body = SearchOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "the search queue is full; see Retry-After")))]
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
    let answer = state.search_similar(id, q).await?;
    Ok(Json(SearchOut::of(answer, t0)))
}
