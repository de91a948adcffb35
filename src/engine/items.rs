//! What an opened index holds of its items: a snapshot of all of them in memory (a
//! folder; `eval` and benchmarks anywhere), or none, where the store answers reads itself
//! ([`crate::store::ItemReads`]: a Milvus collection opened by a query server), so that
//! a server's memory does not grow with the catalogue. The engine's item reads (one item,
//! a page, the count, the census of metadata values) go to whichever it holds.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Engine;
use crate::error::{Error, Result};
use crate::index::Filter;
use crate::store::{ItemReads, ItemRecord};

/// Whether an index is opened with its items in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residency {
    /// A snapshot of every item, whatever the store.
    Snapshot,
    /// No item in memory where the store answers reads itself ([`crate::store::Store::reads`]),
    /// a snapshot where it does not (a folder): what `serve` and `search` open.
    InStoreWherePossible,
}

/// Distinct values counted per column of an index read from its store: a column with
/// more (names, ids) is no filter, and its census stops growing there.
pub const CENSUS_MAX_VALUES: usize = 10_000;

/// How long an engine without a snapshot trusts its census: other processes' writes are
/// counted after this (its own at once).
pub const CENSUS_TTL: Duration = Duration::from_secs(300);

/// Items per metadata value, per column, as of one moment.
#[derive(Debug, Default)]
pub struct Census {
    /// Items counted.
    pub items: usize,
    /// Per column (CSV order): each value's items, and the items without one.
    pub columns: Vec<(String, BTreeMap<String, u64>, u64)>,
    /// Per column, lower-cased values (what predictions compare), made on first use.
    lowered: Mutex<HashMap<String, Arc<HashMap<String, u64>>>>,
}

impl Census {
    /// Count `columns` over the metadata `each` visits; `cap` distinct values per column
    /// at most (later new values are not counted).
    pub fn count(
        columns: &[String],
        cap: Option<usize>,
        each: impl FnOnce(&mut dyn FnMut(&BTreeMap<String, String>)) -> Result<()>,
    ) -> Result<Self> {
        let mut counts: Vec<(String, BTreeMap<String, u64>, u64)> =
            columns.iter().map(|c| (c.clone(), BTreeMap::new(), 0)).collect();
        let mut items = 0;
        each(&mut |metadata| {
            items += 1;
            for (column, values, missing) in &mut counts {
                match metadata.get(column.as_str()) {
                    Some(v) => {
                        let room = cap.is_none_or(|cap| values.len() < cap);
                        match values.get_mut(v) {
                            Some(n) => *n += 1,
                            None if room => {
                                values.insert(v.clone(), 1);
                            }
                            None => {}
                        }
                    }
                    None => *missing += 1,
                }
            }
        })?;
        Ok(Self { items, columns: counts, lowered: Mutex::default() })
    }

    /// Items per lower-cased value of `column` (empty for a column the index lacks).
    pub fn lowered(&self, column: &str) -> Arc<HashMap<String, u64>> {
        if let Some(c) = self.lowered.lock().ok().and_then(|c| c.get(column).cloned()) {
            return c;
        }
        let mut out: HashMap<String, u64> = HashMap::new();
        if let Some((_, values, _)) = self.columns.iter().find(|(c, _, _)| c == column) {
            for (v, n) in values {
                *out.entry(v.to_lowercase()).or_insert(0) += n;
            }
        }
        let out = Arc::new(out);
        if let Ok(mut c) = self.lowered.lock() {
            c.insert(column.to_string(), out.clone());
        }
        out
    }
}

/// The census an engine without a snapshot keeps: when it was taken, and whether a
/// write of its own made it stale.
#[derive(Debug, Default)]
pub(super) struct CensusCache {
    taken: Mutex<Option<(Instant, Arc<Census>)>>,
    stale: std::sync::atomic::AtomicBool,
    /// A census was taken once: predictions have their class priors (read without the
    /// lock, which a walk holds for as long as it takes).
    counted: std::sync::atomic::AtomicBool,
}

impl CensusCache {
    pub(super) fn invalidate(&self) {
        self.stale.store(true, std::sync::atomic::Ordering::Release);
    }
}

impl Engine {
    /// The store's reads, when this engine holds no snapshot.
    pub(super) fn in_store(&self) -> Option<&dyn ItemReads> {
        if self.in_store { self.store.reads() } else { None }
    }

    /// How many items this engine holds in memory (0 when its store answers reads).
    pub fn items_in_memory(&self) -> usize {
        self.index().len()
    }

    /// How many items the index holds.
    pub fn len(&self) -> Result<usize> {
        match self.in_store() {
            Some(reads) => Ok(reads.count(&[])?),
            None => Ok(self.index().len()),
        }
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// An item by id (one given decomposed names the item stored in NFC): its id as
    /// stored, its record and its vector.
    pub fn item(&self, id: &str) -> Result<Option<(String, ItemRecord, Vec<f32>)>> {
        match self.in_store() {
            Some(reads) => {
                use unicode_normalization::UnicodeNormalization;
                let nfc: String = id.nfc().collect();
                let mut ids = vec![id.to_string()];
                if nfc != id {
                    ids.push(nfc);
                }
                let mut found = reads.items(&ids)?;
                Ok(ids.into_iter().find_map(|i| found.remove(&i).map(|(r, v)| (i, r, v))))
            }
            None => {
                let index = self.index();
                Ok(index.key_of(id).and_then(|key| {
                    Some((
                        index.id(key)?.to_string(),
                        index.record(key)?.clone(),
                        index.vector(key)?.to_vec(),
                    ))
                }))
            }
        }
    }

    /// Whether the index holds an item of this id.
    pub fn contains(&self, id: &str) -> Result<bool> {
        Ok(self.item(id)?.is_some())
    }

    /// The items passing `filter`, in id order: `offset` skipped, at most `limit`, with
    /// how many pass.
    pub fn page(
        &self,
        filter: &Filter,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<(String, ItemRecord)>, usize)> {
        match self.in_store() {
            Some(reads) => {
                let total = reads.count(filter.clauses())?;
                if offset >= total {
                    return Ok((Vec::new(), total));
                }
                if offset.saturating_add(limit) > reads.page_limit() {
                    return Err(Error::BadParameter {
                        name: "page",
                        message: format!(
                            "this index lists its first {} matches only; narrow the list with \
                             a filter",
                            reads.page_limit()
                        ),
                    });
                }
                Ok((reads.page(filter.clauses(), offset, limit)?, total))
            }
            None => {
                let index = self.index();
                let keys: Vec<u32> = match index.filter_keys(filter) {
                    Some(keys) => keys.iter().collect(),
                    None => index.keys().collect(),
                };
                let page = keys
                    .iter()
                    .skip(offset)
                    .take(limit)
                    .filter_map(|&k| Some((index.id(k)?.to_string(), index.record(k)?.clone())))
                    .collect();
                Ok((page, keys.len()))
            }
        }
    }

    /// Items per value of each metadata column: the snapshot's, or, without one, the
    /// store's as of the last count (taken again after this engine's writes, and after
    /// [`CENSUS_TTL`] for other processes'; [`CENSUS_MAX_VALUES`] values per column).
    pub fn census(&self) -> Result<Arc<Census>> {
        let columns = &self.info.columns;
        let Some(reads) = self.in_store() else {
            let index = self.index();
            let census = Census::count(columns, None, |f| {
                for key in index.keys() {
                    if let Some(m) = index.metadata(key) {
                        f(m);
                    }
                }
                Ok(())
            })?;
            return Ok(Arc::new(census));
        };
        let cache = &self.census;
        let stale = cache.stale.swap(false, std::sync::atomic::Ordering::AcqRel);
        let mut taken = cache.taken.lock().map_err(|_| super::write::poisoned())?;
        if let Some((at, c)) = taken.as_ref()
            && !stale
            && at.elapsed() < CENSUS_TTL
        {
            return Ok(c.clone());
        }
        let census = Arc::new(Census::count(columns, Some(CENSUS_MAX_VALUES), |f| {
            reads.scan_records(&mut |_, r| f(&r.metadata))?;
            Ok(())
        })?);
        *taken = Some((Instant::now(), census.clone()));
        cache.counted.store(true, std::sync::atomic::Ordering::Release);
        Ok(census)
    }

    /// Count what an engine without a snapshot counts before its first search (the
    /// census: facets, stats and the class priors of predictions; a walk over every
    /// record, ~10,000 a second from Milvus); nothing for an engine with a snapshot.
    /// Opening leaves it to the caller, so that a server can listen meanwhile.
    pub fn warm(&self) -> Result<()> {
        if self.in_store().is_some() {
            self.census()?;
        }
        Ok(())
    }

    /// Whether [`Engine::warm`] has nothing left to do.
    pub fn warmed(&self) -> bool {
        self.in_store().is_none() || self.census.counted.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Items per lower-cased value of `column`, what predictions weigh classes by.
    pub(super) fn value_counts(&self, column: &str) -> Arc<HashMap<String, u64>> {
        if self.in_store().is_none() {
            return self.index().value_counts(column);
        }
        match self.census() {
            Ok(c) => c.lowered(column),
            Err(e) => {
                tracing::warn!("cannot count the index's values: {}", crate::error::chain(&e));
                Arc::default()
            }
        }
    }
}
