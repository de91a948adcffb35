//! A photo query's multipart form, read once for every endpoint that takes one (search,
//! batch, embed, recommend): its photos in the order given (uploaded, by URL, or an
//! item's id, each liked, disliked or simply queried) and its search options.

use super::*;

/// Most photos, URLs and ids one form may name.
pub(super) const MAX_FORM_SOURCES: usize = 64;

/// What a photo or id in a form is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Query,
    Like,
    Unlike,
}

/// Where a query's photo comes from.
#[derive(Debug, Clone)]
pub(super) enum Source {
    Image(Bytes),
    Url(String),
    Id(String),
}

/// A form's parts: its sources with their field names, and its options.
#[derive(Debug, Default)]
pub(super) struct QueryForm {
    pub(super) sources: Vec<(Role, &'static str, Source)>,
    k: Option<String>,
    crop: Option<Crop>,
    filters: Vec<String>,
    resize: QueryResize,
    colour: Option<f32>,
    min_score: Option<f32>,
    collapse: Option<f32>,
    trained: Option<f32>,
    category: Option<f32>,
    locate: Option<bool>,
    /// `flip=true`: the photo's mirror as a second view (see [`Query::flip`]).
    flip: Option<bool>,
    /// `keep_nearest=false`: every place by blended score (see [`Query::keep_nearest`]).
    keep_nearest: Option<bool>,
    /// `vector=true`: give the query's vector back with its results.
    pub(super) vector: bool,
    /// `all_garments=true`: find every garment of each photo and search each one.
    pub(super) all_garments: bool,
}

impl QueryForm {
    pub(super) async fn read(
        state: &AppState,
        form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
    ) -> Result<Self, AppError> {
        let mut form = opened(form)?;
        let mut out = QueryForm::default();
        while let Some(part) = next_part(&mut form, state.max_upload).await? {
            let (name, data) = (part.name.as_str(), &part.data);
            let text = || part.text();
            let source = match name {
                "image" => Some((Role::Query, "image", Source::Image(data.clone()))),
                "url" => Some((Role::Query, "url", Source::Url(text()))),
                "id" => Some((Role::Query, "id", Source::Id(text()))),
                "like" => Some((Role::Like, "like", Source::Id(text()))),
                "like_image" => Some((Role::Like, "like_image", Source::Image(data.clone()))),
                "like_url" => Some((Role::Like, "like_url", Source::Url(text()))),
                "unlike" => Some((Role::Unlike, "unlike", Source::Id(text()))),
                "unlike_image" => Some((Role::Unlike, "unlike_image", Source::Image(data.clone()))),
                "unlike_url" => Some((Role::Unlike, "unlike_url", Source::Url(text()))),
                _ => None,
            };
            if let Some(source) = source {
                if out.sources.len() == MAX_FORM_SOURCES {
                    return Err(AppError::BadRequest(format!(
                        "too many photos, URLs and ids in one request: at most {MAX_FORM_SOURCES}"
                    )));
                }
                out.sources.push(source);
                continue;
            }
            match name {
                "k" => out.k = Some(text()),
                "crop" if !text().is_empty() => {
                    out.crop = Some(text().parse::<Crop>().map_err(AppError::BadRequest)?);
                }
                "crop" => {}
                "filter" => out.filters.push(text()),
                "resize" => {
                    out.resize = text().parse::<QueryResize>().map_err(AppError::BadRequest)?;
                }
                "colour" => out.colour = fraction("colour", Some(&text()), 0.0, MAX_COLOUR)?,
                "min_score" => out.min_score = fraction("min_score", Some(&text()), -1.0, 1.0)?,
                "collapse" => out.collapse = fraction("collapse", Some(&text()), 0.0, 1.0)?,
                "trained" => out.trained = fraction("trained", Some(&text()), 0.0, 1.0)?,
                "category" => {
                    out.category = fraction("category", Some(&text()), 0.0, MAX_CATEGORY)?;
                }
                "locate" => out.locate = locate_flag(&text())?,
                "flip" => out.flip = Some(flag("flip", &text())?),
                "keep_nearest" => out.keep_nearest = Some(flag("keep_nearest", &text())?),
                "vector" => out.vector = flag("vector", &text())?,
                "all_garments" => out.all_garments = flag("all_garments", &text())?,
                other => {
                    return Err(AppError::BadRequest(format!("unknown form field '{other}'")));
                }
            }
        }
        Ok(out)
    }

    /// The search options, checked.
    pub(super) fn query(&self, state: &AppState) -> Result<Query, AppError> {
        Ok(Query {
            k: number("k", self.k.as_deref(), 5, API_MAX_K.min(MAX_K))?,
            filter: filter(state, &self.filters)?,
            crop: self.crop,
            resize: self.resize,
            colour: self.colour,
            min_score: self.min_score,
            collapse: self.collapse,
            trained: self.trained,
            category: self.category,
            locate: self.locate,
            flip: self.flip,
            keep_nearest: self.keep_nearest.unwrap_or(true),
            ..Query::default()
        })
    }

    /// Refuses sources of a role this endpoint does not take, naming their field.
    pub(super) fn only(&self, roles: &[Role], what: &str) -> Result<(), AppError> {
        match self.sources.iter().find(|(role, ..)| !roles.contains(role)) {
            Some((_, field, _)) => {
                Err(AppError::BadRequest(format!("the field '{field}' is not taken here; {what}")))
            }
            None => Ok(()),
        }
    }
}

/// A yes/no form field.
fn flag(name: &str, text: &str) -> Result<bool, AppError> {
    match text {
        "" | "true" | "1" | "on" | "yes" => Ok(true),
        "false" | "0" | "off" | "no" => Ok(false),
        other => Err(AppError::BadRequest(format!("{name} must be true or false, got '{other}'"))),
    }
}

/// A query's photo, and the share of the byte budget its bytes hold (a fetched photo's;
/// an upload's is held by the body it came in).
pub(super) struct Photo {
    pub(super) bytes: Bytes,
    pub(super) held: admission::Held,
}

impl AppState {
    /// A source's photo: an upload as it is, a URL fetched within the server's limits
    /// (not for ids, which are searched as items). A fetch waits at most the queue wait
    /// for one of the fetch places, and holds its bytes against the budget as they
    /// arrive: past either, 503.
    pub(super) async fn photo(&self, source: &Source) -> Result<Photo, AppError> {
        match source {
            Source::Image(bytes) if bytes.is_empty() => {
                Err(AppError::BadRequest("the uploaded photo is an empty file".into()))
            }
            Source::Image(bytes) if bytes.len() > self.max_upload => {
                Err(too_large(self.max_upload))
            }
            Source::Image(bytes) => Ok(Photo { bytes: bytes.clone(), held: self.budget.nothing() }),
            Source::Url(url) if url.is_empty() => {
                Err(AppError::BadRequest("the 'url' field is empty".into()))
            }
            Source::Url(url) => {
                let fetcher = self.fetcher.as_ref().map_err(|e| {
                    AppError::Internal(format!("the client for photo URLs did not start: {e}"))
                })?;
                let place =
                    tokio::time::timeout(self.queue_wait, self.fetches.clone().acquire_owned());
                let Ok(Ok(_place)) = place.await else {
                    self.refused.note();
                    return Err(AppError::Busy);
                };
                let mut held = self.budget.nothing();
                let fetched = fetcher.fetch_within(url, &mut |n| held.grow(n as u64)).await;
                self.metrics.fetched(match &fetched {
                    Ok(_) => "ok",
                    Err(e) if e.is_user_error() => "refused",
                    Err(crate::fetch::FetchError::OverBudget { .. }) => "busy",
                    Err(_) => "upstream",
                });
                let bytes = Bytes::from(fetched.map_err(crate::Error::from)?);
                Ok(Photo { bytes, held })
            }
            Source::Id(_) => Err(AppError::BadRequest("an item id is not a photo".into())),
        }
    }

    /// `f` run on the pool with a photo's bytes, their decode held against the byte
    /// budget until it returns (what every photo search and embedding shares).
    pub(super) async fn with_photo<T: Send + 'static>(
        &self,
        photo: Photo,
        f: impl FnOnce(&Engine, &[u8]) -> crate::Result<T> + Send + 'static,
    ) -> Result<T, AppError> {
        let Photo { bytes, mut held } = photo;
        if !held.grow(crate::preprocess::decode_cost(&bytes)) {
            self.refused.note();
            return Err(AppError::Busy);
        }
        let engine = self.engine.clone();
        Ok(self
            .pool
            .run(move || {
                let _held = held;
                f(&engine, &bytes)
            })
            .await??)
    }

    /// Search with a photo on the pool ([`AppState::with_photo`]); its stages are timed
    /// into the metrics. With `keep_vector`, the query's vector comes back too.
    pub(super) async fn search_photo(
        &self,
        photo: Photo,
        query: Query,
        keep_vector: bool,
    ) -> Result<(crate::engine::Answer, Option<Vec<f32>>), AppError> {
        let (answer, vector) = self
            .with_photo(photo, move |engine, bytes| {
                let (answer, embedded) = engine.search_photo_embedded(bytes, &query)?;
                let vector = keep_vector.then(|| engine.compared_vector(&embedded, &query));
                Ok((answer, vector.transpose()?))
            })
            .await?;
        self.metrics.stages(&answer.timing);
        Ok((answer, vector))
    }

    /// Every garment of a photo, each searched, on the pool (one slot for all: the
    /// garments of one photo are searched one after the other), as
    /// [`AppState::search_photo`] searches one.
    pub(super) async fn search_look(
        &self,
        photo: Photo,
        query: Query,
        keep_vector: bool,
    ) -> Result<(crate::engine::Look, Option<Vec<f32>>), AppError> {
        let (look, vector) = self
            .with_photo(photo, move |engine, bytes| {
                let look = engine.search_look(bytes, &query)?;
                let vector = keep_vector.then(|| engine.compared_vector(&look.embedded, &query));
                Ok((look, vector.transpose()?))
            })
            .await?;
        self.metrics.stages(&look.answer.timing);
        Ok((look, vector))
    }

    /// A catalogue item's similar items, on the pool.
    pub(super) async fn search_similar(
        &self,
        id: String,
        query: Query,
    ) -> Result<crate::engine::Answer, AppError> {
        let engine = self.engine.clone();
        Ok(self.pool.run(move || engine.similar_answer(&id, &query)).await??)
    }
}
