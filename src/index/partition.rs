//! The approximate index: a partition of the vector space into cells (spherical k-means,
//! an "inverted file"). Each item belongs to the cell of its nearest centroid; a search
//! compares the query with the centroids and then scans, exactly, only the items of the
//! nearest few cells.
//!
//! Chosen over the HNSW graph on the numbers (BENCHMARKS.md, "Scale"): a catalogue holds
//! each product many times over (sizes, colours, shots), and near-copies fall in the same
//! cell, where a graph spends its links inside such clusters and cannot get out of them
//! (recall@10 plateaus at 0.92 at 1M). A cell scan reuses the exact kernels (i8 codes and
//! f32 re-rank), so scores stay exact; placing a new item is one comparison with the
//! centroids, so live writes cost nothing in proportion to the index.

use std::collections::BTreeMap;
use std::sync::Arc;

use roaring::RoaringBitmap;

use crate::error::Result;
use crate::kernel;
use crate::store::{Change, ItemRecord, Store};

/// A partition needs at least this many items per cell on average to be worth training.
const MIN_ITEMS_PER_CELL: usize = 2;
/// Upper bound on cells: the centroid comparison each query pays grows with them.
pub const MAX_CELLS: usize = 4096;
/// Rows of training sample per cell: k-means on a sample is as good as on everything for
/// placing centroids, and much cheaper.
const SAMPLE_PER_CELL: usize = 48;
const TRAIN_ITERATIONS: usize = 12;
/// Sample rows per cell that k-means++ seeding draws the first centroids from.
const SEED_POOL_PER_CELL: usize = 8;
/// Rows assigned per matrix product (bounds the score buffer to rows x cells floats).
const ASSIGN_CHUNK: usize = 2048;

/// The cells a partition of `n` items gets: about √n, so that a cell and the centroid
/// list are of the same size and a probe costs about √n comparisons per cell.
pub fn cells_for(n: usize) -> usize {
    if n < 2 * MIN_ITEMS_PER_CELL {
        return 0;
    }
    ((n as f64).sqrt().round() as usize).clamp(2, MAX_CELLS).min(n / MIN_ITEMS_PER_CELL)
}

/// Centroids of unit length, `cells x dim`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    dim: usize,
    centroids: Vec<f32>,
}

impl Partition {
    /// A stored partition; `None` when `centroids` is not a whole number of rows of `dim`.
    pub fn from_centroids(dim: usize, centroids: Vec<f32>) -> Option<Self> {
        (dim > 0 && !centroids.is_empty() && centroids.len().is_multiple_of(dim))
            .then_some(Self { dim, centroids })
    }

    pub fn cells(&self) -> usize {
        self.centroids.len() / self.dim
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn centroids(&self) -> &[f32] {
        &self.centroids
    }

    /// Spherical k-means over `rows` (unit vectors, `dim` each) into `cells` cells,
    /// deterministic for a given `seed`. `None` when there are fewer rows than cells.
    pub fn train(rows: &[f32], dim: usize, cells: usize, seed: u64) -> Option<Self> {
        let n = rows.len() / dim.max(1);
        if dim == 0 || cells == 0 || n < cells {
            return None;
        }
        let mut rng = SplitMix(seed);
        // A sample drawn without replacement (partial Fisher–Yates), in a fixed order.
        let take = (cells * SAMPLE_PER_CELL).min(n);
        let mut order: Vec<usize> = (0..n).collect();
        for i in 0..take {
            let j = i + (rng.next() as usize) % (n - i);
            order.swap(i, j);
        }
        let sample: Vec<f32> =
            order[..take].iter().flat_map(|&r| &rows[r * dim..(r + 1) * dim]).copied().collect();
        let mut centroids = seed_centroids(&sample, dim, cells, &mut rng);
        let mut assignment = vec![u32::MAX; take];
        for _ in 0..TRAIN_ITERATIONS {
            let (next, _) = assign_rows(&centroids, dim, &sample);
            let changed = next.iter().zip(&assignment).filter(|(a, b)| a != b).count();
            assignment = next;
            let mut sums = vec![0.0f32; cells * dim];
            let mut counts = vec![0usize; cells];
            for (r, &c) in assignment.iter().enumerate() {
                let c = c as usize;
                counts[c] += 1;
                for (s, x) in sums[c * dim..(c + 1) * dim].iter_mut().zip(&sample[r * dim..]) {
                    *s += x;
                }
            }
            for c in 0..cells {
                let centroid = &mut sums[c * dim..(c + 1) * dim];
                if counts[c] == 0 || crate::embed::normalise(centroid).is_err() {
                    // An empty cell restarts from a random sample row.
                    let r = (rng.next() as usize) % take;
                    centroid.copy_from_slice(&sample[r * dim..(r + 1) * dim]);
                }
            }
            centroids = sums;
            if changed * 1000 < take {
                break;
            }
        }
        Some(Self { dim, centroids })
    }

    /// The cell of each of `rows` (`dim` floats each).
    pub fn assign(&self, rows: &[f32]) -> Vec<u32> {
        assign_rows(&self.centroids, self.dim, rows).0
    }

    /// The `probes` cells nearest to `query`, nearest first.
    pub fn nearest(&self, query: &[f32], probes: usize) -> Vec<u32> {
        self.nearest_scored(query, probes).into_iter().map(|s| s.row as u32).collect()
    }

    /// [`Partition::nearest`] with each centroid's dot product with the query.
    pub fn nearest_scored(&self, query: &[f32], probes: usize) -> Vec<kernel::Scored> {
        kernel::top_k(&self.centroids, self.dim, query, probes, |_| true)
    }

    /// Cell `c`'s centroid (unit length).
    pub fn centroid(&self, c: usize) -> Option<&[f32]> {
        self.centroids.get(c * self.dim..(c + 1) * self.dim)
    }
}

/// Items sampled per partition to measure how close items sit to their centroids.
const NEAR_SAMPLE: usize = 20_000;

/// At most this many times the planned cells are probed for a query far from every
/// centroid.
pub const MAX_PROBE_FACTOR: f64 = 4.0;

/// The cosine to its own centroid that all but a tenth of the items reach: a query less
/// close than that to its nearest centroid lies between cells (a shopper's snapshot
/// rather than a catalogue photo), where its nearest items spread over more of them.
fn near_cosine<'a>(partition: &Partition, items: impl Iterator<Item = (u32, &'a [f32])>) -> f32 {
    let mut cosines: Vec<f32> = items
        .filter_map(|(cell, v)| {
            let c = partition.centroid(cell as usize)?;
            let norm = kernel::dot(v, v).sqrt();
            (norm > 0.0).then(|| kernel::dot(v, c) / norm)
        })
        .collect();
    if cosines.is_empty() {
        return 1.0;
    }
    let i = cosines.len() / 10;
    let (_, tenth, _) = cosines.select_nth_unstable_by(i, f32::total_cmp);
    *tenth
}

/// One cell's items with their i8 codes side by side, so that a probe reads one
/// contiguous block instead of rows scattered through the index (a scattered row costs
/// ~0.4 µs at 1M, a streamed one ~0.1 µs; BENCHMARKS.md, "Scale").
#[derive(Debug, Clone, Default)]
struct Block {
    keys: Vec<u32>,
    rows: kernel::Int8Rows,
}

impl Block {
    fn push(&mut self, key: u32, vector: &[f32]) {
        self.keys.push(key);
        self.rows.push(vector);
    }

    /// The block without `gone`'s keys.
    fn without(&self, gone: &RoaringBitmap, dim: usize) -> Block {
        let mut out = Block::default();
        for (i, &key) in self.keys.iter().enumerate().filter(|(_, k)| !gone.contains(**k)) {
            out.keys.push(key);
            out.rows.scales.push(self.rows.scales[i]);
            out.rows.codes.extend_from_slice(&self.rows.codes[i * dim..(i + 1) * dim]);
        }
        out
    }
}

/// Which items are in which cell, for one snapshot of the index. Cells are shared between
/// snapshots and copied only when a write touches them.
#[derive(Debug, Clone)]
pub struct Cells {
    partition: Arc<Partition>,
    blocks: Vec<Arc<Block>>,
    /// Items without a (valid) cell: every search scans them too, so none is ever missed.
    unplaced: RoaringBitmap,
    /// The cosine to its centroid that nine in ten items reach ([`near_cosine`]), measured
    /// when the cells are built; kept through writes (a few items do not move it).
    near: f32,
}

impl Cells {
    /// Place `items` (key, cell from its record, vector).
    pub fn new<'a>(
        partition: Partition,
        items: impl IntoIterator<Item = (u32, Option<u32>, &'a [f32])>,
    ) -> Self {
        let mut blocks = vec![Block::default(); partition.cells()];
        let mut unplaced = RoaringBitmap::new();
        let mut placed: Vec<(u32, &[f32])> = Vec::new();
        for (key, cell, vector) in items {
            match cell.and_then(|c| blocks.get_mut(c as usize).map(|b| (c, b))) {
                Some((c, b)) => {
                    b.push(key, vector);
                    placed.push((c, vector));
                }
                None => {
                    unplaced.insert(key);
                }
            }
        }
        // A spread sample is enough for a quantile, and keeps opening a 1M index quick.
        let step = placed.len().div_ceil(NEAR_SAMPLE).max(1);
        let near = near_cosine(&partition, placed.iter().step_by(step).copied());
        let blocks = blocks.into_iter().map(Arc::new).collect();
        Self { partition: Arc::new(partition), blocks, unplaced, near }
    }

    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// Number of items that no cell holds (added before the partition was trained).
    pub fn unplaced(&self) -> u64 {
        self.unplaced.len()
    }

    /// Keys of the items no cell holds.
    pub fn unplaced_keys(&self) -> &RoaringBitmap {
        &self.unplaced
    }

    /// The next snapshot's cells: `added` placed (key, cell, vector), `removed` taken out
    /// (key, recorded cell). Only the blocks touched are copied.
    pub fn with_changes(
        &self,
        added: &[(u32, Option<u32>, &[f32])],
        removed: &[(u32, Option<u32>)],
    ) -> Self {
        let dim = self.partition.dim();
        let mut next = self.clone();
        // Keys leaving each touched block, so that a block is rewritten once per write.
        let mut gone: BTreeMap<usize, RoaringBitmap> = BTreeMap::new();
        for &(key, cell) in removed {
            match cell.map(|c| c as usize).filter(|&c| c < next.blocks.len()) {
                Some(c) => {
                    gone.entry(c).or_default().insert(key);
                }
                None => {
                    next.unplaced.remove(key);
                }
            }
        }
        for (c, keys) in gone {
            next.blocks[c] = Arc::new(next.blocks[c].without(&keys, dim));
        }
        for &(key, cell, vector) in added {
            match cell.and_then(|c| next.blocks.get_mut(c as usize)) {
                Some(b) => Arc::make_mut(b).push(key, vector),
                None => {
                    next.unplaced.insert(key);
                }
            }
        }
        next
    }

    /// The `depth` best items of the `probes` cells nearest to `query` by their i8 codes
    /// (rows of the result are keys), among those `keep` accepts; cells in parallel.
    pub fn scan<F>(&self, query: &[f32], probes: usize, depth: usize, keep: F) -> kernel::TopK
    where
        F: Fn(u32) -> bool + Sync,
    {
        self.scan_cells(&self.partition.nearest(query, probes), query, depth, keep)
    }

    /// [`Cells::scan`] with the number of cells adapted to the query: `probes` for a query
    /// as close to its nearest centroid as nine in ten items are to theirs, and up to
    /// [`MAX_PROBE_FACTOR`] times more the further it lies from every centroid, in
    /// proportion to its distance (1 − cosine) against the items'. A shopper's snapshot
    /// lies between cells, and its nearest items spread over more of them (recall@10 of
    /// 16 of 211 cells for 300 street photos on an ImageNet Lite0 index: 0.961 with a
    /// fixed number; BENCHMARKS.md, "Scale").
    pub fn scan_adaptive<F>(
        &self,
        query: &[f32],
        probes: usize,
        depth: usize,
        keep: F,
    ) -> kernel::TopK
    where
        F: Fn(u32) -> bool + Sync,
    {
        self.scan_cells(&self.probed_cells(query, probes), query, depth, keep)
    }

    /// The cells [`Cells::scan_adaptive`] scans for `query`, nearest first.
    pub fn probed_cells(&self, query: &[f32], probes: usize) -> Vec<u32> {
        let most = ((probes as f64 * MAX_PROBE_FACTOR).ceil() as usize).min(self.blocks.len());
        let nearest = self.partition.nearest_scored(query, most);
        let norm = kernel::dot(query, query).sqrt();
        let best = nearest.first().map_or(1.0, |s| if norm > 0.0 { s.score / norm } else { 1.0 });
        let factor =
            f64::from((1.0 - best) / (1.0 - self.near).max(1e-3)).clamp(1.0, MAX_PROBE_FACTOR);
        let wanted = ((probes as f64 * factor).ceil() as usize).min(nearest.len());
        nearest[..wanted].iter().map(|s| s.row as u32).collect()
    }

    /// The cosine to its centroid that nine in ten items reach.
    pub fn near(&self) -> f32 {
        self.near
    }

    fn scan_cells<F>(&self, cells: &[u32], query: &[f32], depth: usize, keep: F) -> kernel::TopK
    where
        F: Fn(u32) -> bool + Sync,
    {
        use rayon::prelude::*;
        let dim = self.partition.dim();
        cells
            .par_iter()
            .map(|&c| {
                let mut top = kernel::TopK::new(depth);
                let Some(b) = self.blocks.get(c as usize) else { return top };
                for (i, &key) in b.keys.iter().enumerate() {
                    if keep(key) {
                        let code = &b.rows.codes[i * dim..(i + 1) * dim];
                        let score = b.rows.scales[i] * kernel::dot_i8(code, query);
                        top.push(kernel::Scored { row: key as usize, score });
                    }
                }
                top
            })
            .reduce(|| kernel::TopK::new(depth), kernel::TopK::merge)
    }
}

/// Seed of the k-means: the same items give the same partition.
const SEED: u64 = 0x5EED_CE11;

/// What [`refresh`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RefreshReport {
    /// Cells of the partition now (0: none, the index is too small).
    pub cells: usize,
    /// The partition was trained anew.
    pub trained: bool,
    /// Items whose cell was written.
    pub placed: usize,
    pub seconds: f64,
}

/// Fit the store's partition to its items, in one transaction: train it anew when there
/// is none, when the index has outgrown it (twice as many cells wanted, or half as many)
/// or when `retrain` asks, and otherwise place the items that have no cell yet (added
/// before it, or by an older lookalike).
pub fn refresh(store: &dyn Store, dim: usize, retrain: bool) -> Result<RefreshReport> {
    fit(store, dim, retrain, None)
}

/// Place the items `mine` accepts that have no cell yet in the store's partition, in one
/// transaction, and never train it: what one of several indexing processes sharing an
/// index does (`index --shard`), since a partition trained by one of them would move the
/// others' items while they write. Without a partition it does nothing.
pub fn place(store: &dyn Store, dim: usize, mine: &dyn Fn(&str) -> bool) -> Result<RefreshReport> {
    fit(store, dim, false, Some(mine))
}

fn fit(
    store: &dyn Store,
    dim: usize,
    retrain: bool,
    only: Option<&dyn Fn(&str) -> bool>,
) -> Result<RefreshReport> {
    let started = std::time::Instant::now();
    // The vectors and records only: no i8 copies or cell blocks, which a search would need
    // and this does not.
    let current = store.centroids()?.and_then(|c| Partition::from_centroids(dim, c));
    let (mut ids, mut records, mut matrix) = (Vec::new(), Vec::new(), Vec::new());
    super::for_each_item(store, dim, &mut |id, record, v| {
        ids.push(id.to_string());
        records.push(record.clone());
        matrix.extend_from_slice(v);
    })?;
    let want = cells_for(ids.len());
    let fits = |p: &Partition| want == 0 || (p.cells() <= 2 * want && 2 * p.cells() >= want);
    let trained_anew = match &current {
        _ if only.is_some() => None,
        Some(p) if !retrain && fits(p) => None,
        _ => Partition::train(&matrix, dim, want, SEED),
    };
    let trained = trained_anew.is_some();
    let Some(partition) = trained_anew.or(current) else {
        // Too few items for a partition, and none yet.
        return Ok(RefreshReport {
            seconds: started.elapsed().as_secs_f64(),
            ..Default::default()
        });
    };
    let cells = partition.cells();
    let rows: Vec<usize> = (0..ids.len())
        .filter(|&r| trained || records[r].cell.is_none_or(|c| c as usize >= cells))
        .filter(|&r| only.is_none_or(|mine| mine(&ids[r])))
        .collect();
    // Every row after training: place the matrix itself rather than a copy of it.
    let assigned = if rows.len() == ids.len() {
        partition.assign(&matrix)
    } else {
        let mut vectors = Vec::with_capacity(rows.len() * dim);
        for &r in &rows {
            vectors.extend_from_slice(&matrix[r * dim..(r + 1) * dim]);
        }
        partition.assign(&vectors)
    };
    let mut changes = Vec::new();
    if trained {
        changes.push(Change::Centroids(partition.centroids().to_vec()));
    }
    for (&r, cell) in rows.iter().zip(assigned) {
        if records[r].cell != Some(cell) {
            let record = ItemRecord { cell: Some(cell), ..records[r].clone() };
            changes.push(Change::Record { id: ids[r].clone(), record });
        }
    }
    let placed = changes.len() - usize::from(trained);
    if !changes.is_empty() {
        store.apply(None, &changes)?;
    }
    Ok(RefreshReport { cells, trained, placed, seconds: started.elapsed().as_secs_f64() })
}

/// Greedy k-means++ seeding: each next centroid is drawn with probability growing with its
/// distance to the centroids so far (cosine distance 1 - s), trying a few draws and keeping
/// the one that brings the rows closest, so clusters do not start split in two while
/// others share a centroid. Drawn from a pool of the (already shuffled) sample.
fn seed_centroids(sample: &[f32], dim: usize, cells: usize, rng: &mut SplitMix) -> Vec<f32> {
    let pool = (cells * SEED_POOL_PER_CELL).min(sample.len() / dim);
    let rows = &sample[..pool * dim];
    let tries = 2 + (cells as f64).ln().floor() as usize;
    let mut centroids = Vec::with_capacity(cells * dim);
    let mut nearest = vec![f32::NEG_INFINITY; pool];
    let mut draws: Vec<usize> = vec![0];
    while centroids.len() < cells * dim {
        let picks: Vec<f32> =
            draws.iter().flat_map(|&r| &rows[r * dim..(r + 1) * dim]).copied().collect();
        // scores[t * pool + r]: similarity of pool row r with draw t.
        let scores = kernel::scores_batch(rows, dim, &picks, draws.len());
        let (best, _) = scores
            .chunks_exact(pool)
            .map(|s| s.iter().zip(&nearest).map(|(&a, &b)| f64::from(1.0 - a.max(b))).sum::<f64>())
            .enumerate()
            .fold((0, f64::INFINITY), |acc, (t, p)| if p < acc.1 { (t, p) } else { acc });
        centroids.extend_from_slice(&picks[best * dim..(best + 1) * dim]);
        for (n, &s) in nearest.iter_mut().zip(&scores[best * pool..(best + 1) * pool]) {
            *n = n.max(s);
        }
        let weight = |s: f32| f64::from((1.0 - s).max(0.0));
        let total: f64 = nearest.iter().map(|&s| weight(s)).sum();
        draws = (0..tries)
            .map(|_| {
                let mut target = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
                for (r, &s) in nearest.iter().enumerate() {
                    target -= weight(s);
                    if target < 0.0 {
                        return r;
                    }
                }
                // Every row already is a centroid (or rounding): any row will do.
                (rng.next() as usize) % pool
            })
            .collect();
    }
    centroids
}

/// Nearest centroid of every row, and its similarity.
fn assign_rows(centroids: &[f32], dim: usize, rows: &[f32]) -> (Vec<u32>, Vec<f32>) {
    let cells = centroids.len() / dim;
    let n = rows.len() / dim;
    let mut cell = Vec::with_capacity(n);
    let mut best = Vec::with_capacity(n);
    for chunk in rows.chunks(ASSIGN_CHUNK * dim) {
        let m = chunk.len() / dim;
        let scores = kernel::scores_batch(centroids, dim, chunk, m);
        for row in scores.chunks_exact(cells) {
            let (c, s) = row
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |acc, (i, &s)| if s > acc.1 { (i, s) } else { acc });
            cell.push(c as u32);
            best.push(s);
        }
    }
    (cell, best)
}

/// A small, seeded generator (the partition must not depend on a global RNG).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &mut [f32]) {
        crate::embed::normalise(v).unwrap();
    }

    /// `per` noisy copies around each of `centres` orthogonal directions (row i: centre
    /// i % centres).
    fn blobs(centres: usize, per: usize, dim: usize, noise: f32, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix(seed);
        let mut f = move || (rng.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        let c: Vec<Vec<f32>> = (0..centres)
            .map(|i| (0..dim).map(|d| if d == i % dim { 1.0 } else { 0.0 }).collect())
            .collect();
        let mut out = Vec::new();
        for i in 0..centres * per {
            let mut v: Vec<f32> = c[i % centres].iter().map(|x| x + noise * f()).collect();
            unit(&mut v);
            out.extend(v);
        }
        out
    }

    #[test]
    fn cells_grow_as_the_square_root() {
        assert_eq!(cells_for(0), 0);
        assert_eq!(cells_for(3), 0);
        assert_eq!(cells_for(4), 2);
        assert_eq!(cells_for(10_000), 100);
        assert_eq!(cells_for(1_000_000), 1000);
        assert_eq!(cells_for(100_000_000), MAX_CELLS);
    }

    #[test]
    fn k_means_separates_clear_clusters_and_is_deterministic() {
        let dim = 16;
        let rows = blobs(8, 50, dim, 0.2, 1);
        // Whatever the seed, clear clusters come out whole (greedy k-means++ seeding).
        for seed in 0..20 {
            let cells = Partition::train(&rows, dim, 8, seed).unwrap().assign(&rows);
            assert!((0..rows.len() / dim).all(|i| cells[i] == cells[i % 8]), "seed {seed}");
        }
        let p = Partition::train(&rows, dim, 8, 7).unwrap();
        assert_eq!(p.cells(), 8);
        for c in p.centroids().chunks_exact(dim) {
            assert!((kernel::dot_scalar(c, c) - 1.0).abs() < 1e-4);
        }
        // Rows of one blob share a cell, and different blobs get different cells.
        let cells = p.assign(&rows);
        for i in 0..rows.len() / dim {
            assert_eq!(cells[i], cells[i % 8], "row {i}");
        }
        let mut distinct: Vec<u32> = cells[..8].to_vec();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 8);
        assert_eq!(Partition::train(&rows, dim, 8, 7), Some(p.clone()));
        // The nearest cell of a row is its own, and probes come nearest first.
        let q = &rows[3 * dim..4 * dim];
        let near = p.nearest(q, 3);
        assert_eq!(near.len(), 3);
        assert_eq!(near[0], cells[3]);
        let s = |c: u32| kernel::dot_scalar(&p.centroids()[c as usize * dim..][..dim], q);
        assert!(s(near[0]) >= s(near[1]) && s(near[1]) >= s(near[2]));
    }

    #[test]
    fn refuses_impossible_requests() {
        let rows = blobs(2, 2, 4, 0.1, 3);
        assert!(Partition::train(&rows, 4, 5, 0).is_none());
        assert!(Partition::train(&rows, 0, 1, 0).is_none());
        assert!(Partition::from_centroids(4, vec![0.0; 6]).is_none());
        assert!(Partition::from_centroids(4, Vec::new()).is_none());
        assert_eq!(Partition::from_centroids(4, vec![0.5; 8]).unwrap().cells(), 2);
    }
}
