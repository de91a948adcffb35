//! The store's own search as the planner's approximate path, where the store searches
//! where it keeps the vectors (a Milvus collection): the snapshot then needs no
//! partition of its own for speed, and query servers share the collection's index.
//!
//! The store names candidates; the snapshot decides. Each is scored with the snapshot's
//! own vector by the exact kernel (so a score is the same number whichever path found
//! it), and kept only when the snapshot holds it live and it passes the filter as the
//! snapshot sees it. When the store finds fewer than the snapshot's matches allow (a
//! selective filter, writes the store has not yet made searchable), or fails, the
//! planner searches the snapshot instead.

use std::sync::Arc;

use roaring::RoaringBitmap;

use super::{Filter, Hit, VectorIndex};
use crate::kernel::{self, Scored, TopK};
use crate::store::Store;

/// The store a snapshot may hand its approximate searches to.
#[derive(Clone)]
pub(super) struct Remote(pub(super) Arc<dyn Store>);

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Remote")
    }
}

impl VectorIndex {
    /// This snapshot, handing its approximate searches to `store` if it searches itself
    /// ([`Store::searches`], [`Store::nearest`]); a folder's is not kept, so that the
    /// snapshots readers still hold never keep its environment open.
    pub fn searched_by(mut self, store: Arc<dyn Store>) -> Self {
        if store.searches() {
            self.remote = Some(Remote(store));
        }
        self
    }

    /// The store's `k` nearest of the live items passing `candidates` (`None`: all),
    /// `exclude` left out, re-scored here; `None` when there is no store to ask, it does
    /// not search, or it failed (logged).
    pub(super) fn search_remote(
        &self,
        query: &[f32],
        k: usize,
        filter: &Filter,
        candidates: Option<&RoaringBitmap>,
        exclude: Option<u32>,
    ) -> Option<Vec<Hit>> {
        let Remote(store) = self.remote.as_ref()?;
        let excluded = exclude.and_then(|key| self.id(key));
        let found = match store.nearest(query, k, filter.clauses(), excluded) {
            Ok(found) => found?,
            Err(e) => {
                tracing::warn!(error = %e, "the store's search failed; searching the snapshot");
                return None;
            }
        };
        let mut top = TopK::new(k);
        for (id, _) in found {
            let Some(key) = self.key_of(&id) else { continue };
            if Some(key) == exclude || candidates.is_some_and(|c| !c.contains(key)) {
                continue;
            }
            if let Some(v) = self.vector(key) {
                top.push(Scored { row: key as usize, score: kernel::dot(v, query) });
            }
        }
        Some(self.hits(top.into_sorted()))
    }
}
