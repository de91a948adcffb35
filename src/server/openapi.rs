//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::*;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "lookalike",
        description = "Visual search for fashion catalogues: upload a photo, get similar products. \
            Adding and removing items needs the server's admin token as a bearer token; \
            without one configured at start-up those endpoints answer 403."
    ),
    paths(
        search, batch, recommend::recommend, recommend::embed, get_item, similar, list_items, write::add_item, write::remove_item, facets, stats, image,
        thumbnail
    ),
    components(schemas(
        SearchOut, GarmentOut, BatchOut, BatchItem, EmbedOut, RecommendIn, FilterValue, HitOut, ItemOut, ItemsPage, FacetsOut, StatsOut, TrainedOut, Column, ValueCount, WriteOut,
        ErrorBody, crate::category::Prediction, crate::category::Source, crate::preprocess::Crop, crate::garment::Kind
    )),
    modifiers(&AdminToken)
)]
pub(super) struct ApiDoc;

/// The `admin_token` bearer scheme the write endpoints name.
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some(
            "The token given to `lookalike serve --admin-token` (or LOOKALIKE_ADMIN_TOKEN).".into(),
        );
        components.add_security_scheme("admin_token", SecurityScheme::Http(scheme));
    }
}

pub(super) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
