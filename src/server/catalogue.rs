//! What the catalogue holds: facets (the columns offered as filters) and statistics,
//! computed per snapshot and recomputed lazily after writes.

use super::*;

/// Value counts of the metadata columns, as of one snapshot of the index.
#[derive(Debug, Default)]
pub(super) struct Summary {
    facets: Vec<Column>,
    stats: Vec<Column>,
}

impl Summary {
    pub(super) fn of(engine: &Engine) -> Self {
        let idx = engine.index();
        let stats = column_counts(&engine.info().columns, &idx);
        let facets = stats
            .iter()
            // A column with a value per item (names, ids) is no filter.
            .filter(|c| {
                c.distinct <= FACET_MAX_VALUES && c.distinct > 1 && c.distinct * 2 <= idx.len()
            })
            .cloned()
            .collect();
        Self { facets, stats }
    }
}

/// Columns with more distinct values than this are not offered as filters.
pub(super) const FACET_MAX_VALUES: usize = 200;
/// Values listed per column in the statistics.
pub(super) const STATS_MAX_VALUES: usize = 100;

/// Counts of one metadata column's values, most frequent first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Column {
    pub name: String,
    /// Number of distinct values.
    pub distinct: usize,
    /// Items with no value in this column.
    pub missing: usize,
    pub values: Vec<ValueCount>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ValueCount {
    pub value: String,
    pub count: usize,
}

/// Every column's value counts, the most frequent `FACET_MAX_VALUES` kept.
pub(super) fn column_counts(columns: &[String], idx: &VectorIndex) -> Vec<Column> {
    columns
        .iter()
        .map(|col| {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            let mut missing = 0;
            for key in idx.keys() {
                match idx.metadata(key).and_then(|m| m.get(col)) {
                    Some(v) => *counts.entry(v.as_str()).or_insert(0) += 1,
                    None => missing += 1,
                }
            }
            let distinct = counts.len();
            let mut values: Vec<ValueCount> = counts
                .into_iter()
                .map(|(v, c)| ValueCount { value: v.to_string(), count: c })
                .collect();
            values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
            values.truncate(FACET_MAX_VALUES);
            Column { name: col.clone(), distinct, missing, values }
        })
        .collect()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FacetsOut {
    pub columns: Vec<Column>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsOut {
    pub count: usize,
    pub dimension: usize,
    pub model: String,
    /// Weight of the colour descriptor in the stored vectors (0: none; queries may then
    /// not ask for colour).
    pub colour_weight: f32,
    /// Cells of the partition (the approximate index used from 200,000 candidates on; 0:
    /// none), and the items no cell holds yet (scanned by every search).
    pub cells: usize,
    pub unplaced: u64,
    /// The trained projection (`lookalike train`), if the index has one.
    pub trained: Option<TrainedOut>,
    /// Columns the model predicts for each query (its class heads), so that results of
    /// the predicted category can come first.
    pub predicts: Vec<String>,
    pub columns: Vec<Column>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TrainedOut {
    /// The label it learnt (e.g. articleType) and how many values it knows.
    pub label: String,
    pub classes: usize,
    /// Items it was trained on.
    pub items: usize,
    /// Its share of the score when a query does not say.
    pub default_mix: f32,
}

/// The facets and statistics of the current index, recomputed (off the async threads)
/// if a write made them stale.
pub(super) async fn summary(state: &Arc<AppState>) -> Result<Arc<Summary>, AppError> {
    if state.summary_stale.swap(false, Ordering::AcqRel) {
        let s = state.clone();
        tokio::task::spawn_blocking(move || {
            // The lock guards no data: a panic elsewhere while holding it breaks nothing.
            let _one = s.summary_writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            s.summary.store(Arc::new(Summary::of(&s.engine)));
        })
        .await
        .map_err(|e| AppError::Internal(format!("statistics task failed: {e}")))?;
    }
    Ok(state.summary.load_full())
}

#[utoipa::path(get, path = "/api/facets", responses((status = 200, body = FacetsOut)))]
pub(super) async fn facets(
    State(state): State<Arc<AppState>>,
) -> Result<Json<FacetsOut>, AppError> {
    Ok(Json(FacetsOut { columns: summary(&state).await?.facets.clone() }))
}

#[utoipa::path(get, path = "/api/stats", responses((status = 200, body = StatsOut)))]
pub(super) async fn stats(State(state): State<Arc<AppState>>) -> Result<Json<StatsOut>, AppError> {
    let info = state.engine.info();
    let summary = summary(&state).await?;
    let columns = summary
        .stats
        .iter()
        .map(|c| Column {
            values: c.values.iter().take(STATS_MAX_VALUES).cloned().collect(),
            ..c.clone()
        })
        .collect();
    let index = state.engine.index();
    Ok(Json(StatsOut {
        count: index.len(),
        dimension: info.dim,
        model: info.model.name.clone(),
        colour_weight: info.colour_weight,
        cells: index.cells().map_or(0, |c| c.partition().cells()),
        unplaced: index.cells().map_or(index.len() as u64, |c| c.unplaced()),
        trained: state.engine.projection().ok().flatten().map(|p| TrainedOut {
            label: p.meta().label.clone(),
            classes: p.meta().classes.len(),
            items: p.meta().items,
            default_mix: crate::projection::DEFAULT_MIX,
        }),
        predicts: state
            .engine
            .heads()
            .ok()
            .flatten()
            .map(|h| {
                h.heads()
                    .iter()
                    .map(|h| h.column().to_string())
                    .filter(|c| info.columns.contains(c))
                    .collect()
            })
            .unwrap_or_default(),
        columns,
    }))
}
