//! Product photos and thumbnails, served only from the catalogue (a folder or a bucket
//! prefix) or the index folder, with ETags.

use super::*;

/// Where the catalogue's photos are served from.
#[derive(Debug, Clone)]
pub(super) enum PhotoRoot {
    /// A canonical folder.
    Folder(PathBuf),
    Bucket(crate::bucket::Bucket),
}

impl PhotoRoot {
    /// The catalogue named by `location` (a folder or an `s3://` address); `None`, with
    /// the reason logged, when it cannot be used.
    pub(super) fn open(location: &str) -> Option<Self> {
        use crate::bucket::{Bucket, BucketAddress};
        if BucketAddress::is_address(location) {
            match BucketAddress::parse(location).and_then(Bucket::open) {
                Ok(b) => Some(Self::Bucket(b)),
                Err(e) => {
                    tracing::warn!(error = %e, "the catalogue's object store cannot be used");
                    None
                }
            }
        } else {
            std::fs::canonicalize(location).ok().map(Self::Folder)
        }
    }
}

/// The photo of an item, its bytes and its file name (for the content type): resolved
/// from the index (never from the request), and only inside the catalogue folder or
/// bucket prefix (or, for items added through the API, the index folder).
pub(super) async fn photo_bytes(
    state: &AppState,
    record: &ItemRecord,
) -> Result<Vec<u8>, AppError> {
    let missing = || AppError::NotFound("photo file is missing".into());
    let rel = Path::new(&record.path);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(AppError::NotFound("photo outside the catalogue".into()));
    }
    if record.added {
        // Kept by the index's own store (its folder, or its collection's rows).
        let engine = state.engine.clone();
        let name = record.path.clone();
        return tokio::task::spawn_blocking(move || engine.store().read_file(&name))
            .await
            .map_err(|e| AppError::Internal(format!("photo read failed: {e}")))?
            .map_err(|e| match e {
                crate::store::StoreError::BadFileName { .. } => {
                    AppError::NotFound("photo outside the catalogue".into())
                }
                e => AppError::Internal(format!("photo read failed: {e}")),
            })?
            .ok_or_else(missing);
    }
    let root = match &state.catalog {
        Some(root) => root,
        None => {
            return Err(AppError::NotFound("the catalogue folder is not available".into()));
        }
    };
    match root {
        PhotoRoot::Folder(dir) => {
            let full = std::fs::canonicalize(dir.join(rel)).map_err(|_| missing())?;
            if !full.starts_with(dir) {
                return Err(AppError::NotFound("photo outside the catalogue".into()));
            }
            tokio::task::spawn_blocking(move || crate::catalog::read_photo(&full))
                .await
                .map_err(|e| AppError::Internal(format!("photo read failed: {e}")))?
                .map_err(|_| missing())
        }
        PhotoRoot::Bucket(bucket) => {
            use crate::bucket::BucketError;
            match bucket.get(&record.path, crate::catalog::MAX_PHOTO_BYTES).await {
                Ok(bytes) => Ok(bytes),
                Err(BucketError::NotFound { .. }) => Err(missing()),
                Err(e) => {
                    // The store's address and error stay in the log.
                    tracing::warn!(error = %e, "catalogue photo not read");
                    Err(AppError::Upstream("the catalogue's photo store did not answer".into()))
                }
            }
        }
    }
}

pub(super) fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
}

pub(super) fn cached(
    headers: &HeaderMap,
    etag: String,
    content_type: &'static str,
    body: Bytes,
) -> Response {
    let mut res = if not_modified(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    res
}

pub(super) fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("bmp") => "image/bmp",
        Some("tif" | "tiff") => "image/tiff",
        _ => "application/octet-stream",
    }
}

#[utoipa::path(get, path = "/images/{id}", params(("id" = String, Path, description = "item id")),
    responses((status = 200, description = "the product photo"), (status = 304, description = "not modified (ETag)"), (status = 404, body = ErrorBody)))]
pub(super) async fn image(
    State(state): State<Arc<AppState>>,
    Id(id): Id,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let (_, record) = record_of(&state, &id).await?;
    let etag = format!("\"{}\"", record.hash);
    if not_modified(&headers, &etag) {
        return Ok(cached(&headers, etag, "image/jpeg", Bytes::new()));
    }
    let bytes = photo_bytes(&state, &record).await?;
    Ok(cached(&headers, etag, content_type(Path::new(&record.path)), Bytes::from(bytes)))
}

#[utoipa::path(get, path = "/thumbs/{id}", params(("id" = String, Path, description = "item id")),
    responses((status = 200, description = "a JPEG thumbnail, at most 256 px"), (status = 304, description = "not modified (ETag)"), (status = 400, body = ErrorBody, description = "the id is not valid UTF-8"), (status = 404, body = ErrorBody, description = "unknown id, or its photo is missing or unreadable")))]
pub(super) async fn thumbnail(
    State(state): State<Arc<AppState>>,
    Id(id): Id,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let (_, record) = record_of(&state, &id).await?;
    let hash = record.hash.clone();
    let etag = format!("\"{hash}-t\"");
    if not_modified(&headers, &etag) {
        return Ok(cached(&headers, etag, "image/jpeg", Bytes::new()));
    }
    if let Some(b) = state.thumbs.get(&hash) {
        return Ok(cached(&headers, etag, "image/jpeg", b));
    }
    let photo = photo_bytes(&state, &record).await?;
    let bytes = tokio::task::spawn_blocking(move || thumbs::make(&photo))
        .await
        .map_err(|e| AppError::Internal(format!("thumbnail task failed: {e}")))?
        // The photo went missing or bad after indexing: no thumbnail, as no photo.
        .map_err(|e| AppError::NotFound(format!("the photo of '{id}' cannot be read: {e}")))?;
    state.thumbs.put(hash, bytes.clone());
    Ok(cached(&headers, etag, "image/jpeg", bytes))
}
