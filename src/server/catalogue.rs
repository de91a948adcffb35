//! What the catalogue holds: facets (the columns offered as filters) and statistics,
//! computed per snapshot and recomputed lazily after writes.

use super::*;

/// Value counts of the metadata columns, as of the engine's census (one snapshot, or the
/// store's last count).
#[derive(Debug)]
pub(super) struct Summary {
    facets: Vec<Column>,
    stats: Vec<Column>,
    taken: std::time::Instant,
}

impl Default for Summary {
    fn default() -> Self {
        Self { facets: Vec::new(), stats: Vec::new(), taken: std::time::Instant::now() }
    }
}

impl Summary {
    pub(super) fn of(engine: &Engine) -> crate::error::Result<Self> {
        let census = engine.census()?;
        let stats = column_counts(&census);
        let facets = stats
            .iter()
            // A column with a value per item (names, ids) is no filter.
            .filter(|c| {
                c.distinct <= FACET_MAX_VALUES && c.distinct > 1 && c.distinct * 2 <= census.items
            })
            .cloned()
            .collect();
        Ok(Self { facets, stats, taken: std::time::Instant::now() })
    }

    /// [`Summary::of`] when the engine's census is taken, `None` before (it is a walk
    /// over every record, which a server takes while it listens).
    pub(super) fn of_warmed(engine: &Engine) -> crate::error::Result<Option<Self>> {
        if engine.warmed() { Self::of(engine).map(Some) } else { Ok(None) }
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
    /// Number of distinct values (at most [`crate::engine::CENSUS_MAX_VALUES`] are
    /// counted on an index served without a snapshot).
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
pub(super) fn column_counts(census: &Census) -> Vec<Column> {
    census
        .columns
        .iter()
        .map(|(name, counts, missing)| {
            let mut values: Vec<ValueCount> = counts
                .iter()
                .map(|(v, &c)| ValueCount { value: v.clone(), count: c as usize })
                .collect();
            values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
            values.truncate(FACET_MAX_VALUES);
            Column {
                name: name.clone(),
                distinct: counts.len(),
                missing: *missing as usize,
                values,
            }
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
    /// Items this server holds in memory: all of them, or none when it reads them from a
    /// Milvus collection.
    pub items_in_memory: usize,
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
    // Without a snapshot, other processes' writes are counted after the census's TTL.
    let expired = state.engine.items_in_memory() == 0
        && state.summary.load().taken.elapsed() >= crate::engine::CENSUS_TTL;
    if state.summary_stale.swap(false, Ordering::AcqRel) || expired {
        let s = state.clone();
        let fresh = tokio::task::spawn_blocking(move || {
            // The lock guards no data: a panic elsewhere while holding it breaks nothing.
            let _one = s.summary_writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Summary::of(&s.engine).map(|fresh| s.summary.store(Arc::new(fresh)))
        })
        .await
        .map_err(|e| AppError::Internal(format!("statistics task failed: {e}")))?;
        if let Err(e) = fresh {
            // Counted again by the next request.
            state.summary_stale.store(true, Ordering::Release);
            return Err(e.into());
        }
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
    let count = super::items::on_engine(&state, |e| e.len()).await?;
    Ok(Json(StatsOut {
        count,
        items_in_memory: index.len(),
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
