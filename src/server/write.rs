//! The write endpoints: add an item with its photo (`POST /api/items`) and remove one
//! (`DELETE /api/items/{id}`), both behind the admin bearer token given at start-up.

use super::*;

/// What a write did, as the API answers it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WriteOut {
    /// Ids new to the index.
    pub added: Vec<String>,
    /// Ids that were there and now hold the new photo and metadata.
    pub replaced: Vec<String>,
    /// Ids removed.
    pub removed: Vec<String>,
    /// Items in the index after the write.
    pub total_items: usize,
    /// Server time for the write, in seconds.
    pub seconds: f64,
}

impl From<WriteReport> for WriteOut {
    fn from(r: WriteReport) -> Self {
        WriteOut {
            added: r.added,
            replaced: r.replaced,
            removed: r.removed,
            total_items: r.total_items,
            seconds: r.seconds,
        }
    }
}

/// Equal in time independent of where they differ: both sides are digests of one length.
fn same_digest(a: &blake3::Hash, b: &blake3::Hash) -> bool {
    a.as_bytes().iter().zip(b.as_bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuse a write unless the server has an admin token and the request carries it as
/// `Authorization: Bearer <token>`.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    let Some(expected) = &state.admin_token else {
        return Err(AppError::Forbidden(
            "write endpoints are disabled: start the server with --admin-token or LOOKALIKE_ADMIN_TOKEN"
                .into(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| {
            AppError::Unauthorized("missing 'Authorization: Bearer <token>' header".into())
        })?;
    if same_digest(&blake3::hash(given.as_bytes()), expected) {
        Ok(())
    } else {
        Err(AppError::Unauthorized("wrong admin token".into()))
    }
}

/// Facets and statistics no longer describe the index: recomputed when next asked for.
fn mark_stale(state: &AppState) {
    state.summary_stale.store(true, Ordering::Release);
}

/// A metadata value from the `metadata` JSON object: text, or a number or boolean as text.
fn metadata_value(column: &str, v: &Value) -> Result<String, AppError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(AppError::BadRequest(format!(
            "metadata column '{column}' must be a string, got {v}"
        ))),
    }
}

fn put_metadata(
    state: &AppState,
    metadata: &mut BTreeMap<String, String>,
    column: &str,
    value: String,
) -> Result<(), AppError> {
    let columns = &state.engine.info().columns;
    if !columns.iter().any(|c| c == column) {
        return Err(AppError::BadRequest(format!(
            "unknown metadata column '{column}' (columns: {})",
            columns.join(", ")
        )));
    }
    if metadata.insert(column.to_string(), value).is_some() {
        return Err(AppError::BadRequest(format!("metadata column '{column}' is given twice")));
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/api/items",
    request_body(content_type = "multipart/form-data", description = "Fields: `image` (the photo, required), `id` (the item id; default: the uploaded file name without its extension), `metadata` (a JSON object of column → value), and any index column by name as a metadata value. Columns must already exist in the index. An existing id is replaced."),
    security(("admin_token" = [])),
    responses(
        (status = 201, body = WriteOut, description = "added; searches find it at once", headers(("Location" = String, description = "the item's URL"))),
        (status = 200, body = WriteOut, description = "an item with this id was replaced"),
        (status = 400, body = ErrorBody, description = "missing id or photo, unknown field or column, unusable photo"),
        (status = 401, body = ErrorBody, description = "missing or wrong bearer token"),
        (status = 403, body = ErrorBody, description = "write endpoints disabled (no admin token configured)"),
        (status = 408, body = ErrorBody, description = "the upload stopped (no byte for the idle timeout, 10 s) or arrived slower than the minimum rate (32 KB/s after 10 s); the connection is closed"),
        (status = 413, body = ErrorBody, description = "upload over the size limit"),
        (status = 503, body = ErrorBody, description = "the queue is full or the memory budget is spent; see Retry-After"),
    )
)]
pub(super) async fn add_item(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, AppError> {
    authorize(&state, &headers)?;
    let mut form = opened(form)?;
    let mut image: Option<(Bytes, Option<String>)> = None;
    let mut id: Option<String> = None;
    let mut metadata = BTreeMap::new();
    while let Some(part) = next_part(&mut form, state.max_upload).await? {
        let text = || part.text();
        match part.name.as_str() {
            "image" if image.is_some() => {
                return Err(AppError::BadRequest("only one 'image' field per request".into()));
            }
            "image" => image = Some((part.data.clone(), part.file_name.clone())),
            "id" => id = Some(text()),
            "metadata" if text().is_empty() => {}
            "metadata" => {
                let object: BTreeMap<String, Value> =
                    serde_json::from_slice(&part.data).map_err(|e| {
                        AppError::BadRequest(format!(
                            "the 'metadata' field must be a JSON object of column to value: {e}"
                        ))
                    })?;
                for (column, v) in &object {
                    put_metadata(&state, &mut metadata, column, metadata_value(column, v)?)?;
                }
            }
            column if state.engine.info().columns.iter().any(|c| c == column) => {
                put_metadata(&state, &mut metadata, column, text())?;
            }
            other => {
                return Err(AppError::BadRequest(format!(
                    "unknown form field '{other}' (expected image, id, metadata or an index column: {})",
                    state.engine.info().columns.join(", ")
                )));
            }
        }
    }
    let (photo, file_name) = image.ok_or_else(|| {
        AppError::BadRequest("missing the 'image' field (the item's photo)".into())
    })?;
    if photo.is_empty() {
        return Err(AppError::BadRequest("the uploaded photo is an empty file".into()));
    }
    if photo.len() > state.max_upload {
        return Err(too_large(state.max_upload));
    }
    if id.as_deref().is_some_and(str::is_empty) {
        // A blank id is a mistake to name, not a reason to guess from the file name.
        return Err(AppError::BadRequest("the 'id' field is empty".into()));
    }
    let id = id
        .or_else(|| {
            let stem = Path::new(file_name.as_deref()?).file_stem()?.to_str()?.trim();
            (!stem.is_empty()).then(|| stem.to_string())
        })
        .ok_or_else(|| {
            AppError::BadRequest(
                "missing the item id: give an 'id' field or a file name with the photo".into(),
            )
        })?;
    let mut held = state.budget.nothing();
    if !held.grow(crate::preprocess::decode_cost(&photo)) {
        state.refused.note();
        return Err(AppError::Busy);
    }
    // Stored (and found) in NFC, whichever form the client sent.
    let id = crate::engine::canonical_id(&id);
    let task_state = state.clone();
    let item = NewItem { id: id.clone(), photo: photo.to_vec(), metadata };
    let report = state
        .pool
        .run(move || {
            let _held = held;
            let report = task_state.engine.add_items(vec![item])?;
            mark_stale(&task_state);
            Ok::<_, AppError>(report)
        })
        .await??;
    let created = report.replaced.is_empty();
    let body = Json(WriteOut::from(report));
    if created {
        let location = urls_of("/api/items/", &id);
        let mut res = (StatusCode::CREATED, body).into_response();
        if let Ok(v) = HeaderValue::from_str(&location) {
            res.headers_mut().insert(header::LOCATION, v);
        }
        Ok(res)
    } else {
        Ok((StatusCode::OK, body).into_response())
    }
}

#[utoipa::path(
    delete,
    path = "/api/items/{id}",
    params(("id" = String, Path, description = "item id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = WriteOut, description = "removed; searches no longer return it"),
        (status = 401, body = ErrorBody, description = "missing or wrong bearer token"),
        (status = 403, body = ErrorBody, description = "write endpoints disabled (no admin token configured)"),
        (status = 404, body = ErrorBody, description = "unknown id"),
    )
)]
pub(super) async fn remove_item(
    State(state): State<Arc<AppState>>,
    Id(id): Id,
    headers: HeaderMap,
) -> Result<Json<WriteOut>, AppError> {
    authorize(&state, &headers)?;
    let task_state = state.clone();
    let report = tokio::task::spawn_blocking(move || {
        let report = task_state.engine.remove_items(&[id])?;
        mark_stale(&task_state);
        Ok::<_, AppError>(report)
    })
    .await
    .map_err(|e| AppError::Internal(format!("write task failed: {e}")))??;
    Ok(Json(WriteOut::from(report)))
}
