//! The bounded heap that keeps a scan's best rows.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One result of a scan: row number and cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub row: usize,
    pub score: f32,
}

/// Heap order: the *worst* hit on top, so it can be evicted. Higher score is better; on
/// equal scores the lower row wins, which keeps results deterministic.
#[derive(PartialEq)]
struct Worst(Scored);
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        // The max-heap's top is the hit that ranks last.
        better(&self.0, &other.0)
    }
}

/// `Less` when `a` ranks before `b`.
pub(super) fn better(a: &Scored, b: &Scored) -> Ordering {
    b.score.total_cmp(&a.score).then(a.row.cmp(&b.row))
}

/// Keeps the k best of a stream.
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        Self { k, heap: BinaryHeap::with_capacity(k + 1) }
    }

    #[inline]
    pub fn push(&mut self, s: Scored) {
        if self.k == 0 || !s.score.is_finite() {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Worst(s));
        } else if let Some(worst) = self.heap.peek()
            && better(&s, &worst.0) == Ordering::Less
        {
            self.heap.pop();
            self.heap.push(Worst(s));
        }
    }

    /// Threshold a new score must beat to enter (the current k-th), if full.
    #[inline]
    pub(super) fn floor(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.heap.peek().map_or(f32::NEG_INFINITY, |w| w.0.score)
        }
    }

    pub fn merge(mut self, other: TopK) -> TopK {
        for w in other.heap {
            self.push(w.0);
        }
        self
    }

    /// In no particular order.
    pub(super) fn into_unsorted(self) -> impl Iterator<Item = Scored> {
        self.heap.into_iter().map(|w| w.0)
    }

    /// Best first.
    pub fn into_sorted(self) -> Vec<Scored> {
        let mut v: Vec<Scored> = self.heap.into_iter().map(|w| w.0).collect();
        v.sort_by(better);
        v
    }
}
