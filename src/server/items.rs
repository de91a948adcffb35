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

pub(super) fn item_out(idx: &VectorIndex, key: u32) -> Option<ItemOut> {
    let id = idx.id(key)?.to_string();
    let (image, thumbnail) = urls(&id);
    Some(ItemOut { id, metadata: idx.metadata(key)?.clone(), image, thumbnail })
}

pub(super) fn unknown(id: &str) -> AppError {
    AppError::NotFound(format!("unknown id '{id}'"))
}

/// The item's record, from one snapshot of the index.
pub(super) fn record_of(state: &AppState, id: &str) -> Result<ItemRecord, AppError> {
    let idx = state.engine.index();
    idx.key_of(id).and_then(|k| idx.record(k)).cloned().ok_or_else(|| unknown(id))
}

#[utoipa::path(get, path = "/api/items/{id}",
    params(("id" = String, Path, description = "item id")),
    responses((status = 200, body = ItemOut), (status = 404, body = ErrorBody)))]
pub(super) async fn get_item(
    State(state): State<Arc<AppState>>,
    Id(id): Id,
) -> Result<Json<ItemOut>, AppError> {
    let idx = state.engine.index();
    let item = idx.key_of(&id).and_then(|k| item_out(&idx, k)).ok_or_else(|| unknown(&id))?;
    Ok(Json(item))
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
    let idx = state.engine.index();
    let keys: Vec<u32> = match idx.filter_keys(&f) {
        Some(keys) => keys.iter().collect(),
        None => idx.keys().collect(),
    };
    let items = keys
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .filter_map(|&k| item_out(&idx, k))
        .collect();
    Ok(Json(ItemsPage { items, total: keys.len(), page, per_page }))
}
