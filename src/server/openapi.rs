//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::OpenApi;

use super::*;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "lookalike",
        description = "Visual search for fashion catalogues: upload a photo, get similar products."
    ),
    paths(search, get_item, similar, list_items, facets, stats, image, thumbnail),
    components(schemas(
        SearchOut, HitOut, ItemOut, ItemsPage, FacetsOut, StatsOut, Column, ValueCount, ErrorBody
    ))
)]
pub(super) struct ApiDoc;

pub(super) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
