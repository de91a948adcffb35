//! Browsing the catalogue: one item, a page of items, and the URLs of their photos.

use super::*;

/// An item as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemOut {
    pub id: String,
    pub metadata: BTreeMap<String, String>,
    /// URL of the full product photo.
    pub image: String,
    /// URL of a small JPEG thumbnail.
    pub thumbnail: String,
}

pub(super) fn urls(id: &str) -> (String, String) {
    (urls_of("/images/", id), urls_of("/thumbs/", id))
}

/// `prefix` followed by the id, percent-encoded as one path segment.
pub(super) fn urls_of(prefix: &str, id: &str) -> String {
    let enc: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("{prefix}{}", enc.replace('+', "%20"))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemsPage {
    pub items: Vec<ItemOut>,
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
}

pub(super) fn item_out(id: String, record: ItemRecord) -> ItemOut {
    let (image, thumbnail) = urls(&id);
    ItemOut { id, metadata: record.metadata, image, thumbnail }
}

pub(super) fn unknown(id: &str) -> AppError {
    AppError::NotFound(format!("unknown id '{id}'"))
}

/// `f` on the engine off the async threads: an engine without a snapshot asks its store.
pub(super) async fn on_engine<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&Engine) -> crate::error::Result<T> + Send + 'static,
) -> Result<T, AppError> {
    let engine = state.engine.clone();
    Ok(tokio::task::spawn_blocking(move || f(&engine))
        .await
        .map_err(|e| AppError::Internal(format!("item read failed: {e}")))??)
}

/// The item's id as stored and its record.
pub(super) async fn record_of(
    state: &Arc<AppState>,
    id: &str,
) -> Result<(String, ItemRecord), AppError> {
    let wanted = id.to_string();
    on_engine(state, move |e| e.item(&wanted))
        .await?
        .map(|(id, record, _)| (id, record))
        .ok_or_else(|| unknown(id))
}

#[utoipa::path(get, path = "/api/items/{id}",
    params(("id" = String, Path, description = "item id")),
    responses((status = 200, body = ItemOut), (status = 404, body = ErrorBody)))]
pub(super) async fn get_item(
    State(state): State<Arc<AppState>>,
    Id(id): Id,
) -> Result<Json<ItemOut>, AppError> {
    let (id, record) = record_of(&state, &id).await?;
    Ok(Json(item_out(id, record)))
}

#[utoipa::path(get, path = "/api/items",
    params(("page" = Option<usize>, Query, description = "1-based page (default 1)"),
        ("per_page" = Option<usize>, Query, description = "1..100 (default 24)"),
        ("filter" = Option<Vec<String>>, Query, description = "column=value, repeatable")),
    responses((status = 200, body = ItemsPage), (status = 400, body = ErrorBody)))]
pub(super) async fn list_items(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ItemsPage>, AppError> {
    let p = params(raw)?;
    let page = number("page", p.page.as_deref(), 1, usize::MAX / 1024)?;
    let per_page = number("per_page", p.per_page.as_deref(), 24, 100)?;
    let f = filter(&state, &p.filters)?;
    let (found, total) =
        on_engine(&state, move |e| e.page(&f, (page - 1).saturating_mul(per_page), per_page))
            .await?;
    let items = found.into_iter().map(|(id, record)| item_out(id, record)).collect();
    Ok(Json(ItemsPage { items, total, page, per_page }))
}
