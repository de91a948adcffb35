//! Shop-the-look evaluation (`lookalike eval --looks looks.csv`): photos holding several
//! garments, each garment's kind and box known (outfits composed by `bench/looks.py`), or
//! photos with only what they show (a worn catalogue photo, a shopper's snapshot).
//!
//! Per photo, every garment is found and searched ([`Engine::search_look`]). Reported:
//! - garment recall: share of the true garments with a found box of IoU ≥ 0.5 (also
//!   with the kind right);
//! - per-garment precision@k: for each true garment so found, the share of its found
//!   garment's top k whose articleType is the garment's (its own item left out);
//! - for rows without a box: the share of photos where one of the garments found has a
//!   match in its top k (own item left out), the share where at least one garment was
//!   found, and the photo's own results' precision@k (the search without the feature);
//! - time per photo, and that of the photo's plain search for comparison.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::table;
use crate::engine::{Engine, Look, Query};
use crate::error::{Error, Result};
use crate::garment::Kind;
use crate::index::Hit;
use crate::preprocess::Crop;

/// A box this close (intersection over union) to a true one found that garment.
pub const MATCH_IOU: f64 = 0.5;

/// One true garment of a photo (a row of the CSV).
#[derive(Debug, Clone)]
pub struct TrueGarment {
    pub kind: Option<Kind>,
    pub region: Option<Crop>,
    /// The catalogue item it is, left out of its results.
    pub item: Option<String>,
    /// The article types that count as a match (lower case; `|` separated in the CSV).
    pub matches: Vec<String>,
}

/// A photo and its true garments.
#[derive(Debug, Clone)]
pub struct LookPhoto {
    pub file: PathBuf,
    pub garments: Vec<TrueGarment>,
}

/// Read a looks CSV: `file,kind,x,y,w,h,item,article_type`, one row per garment (rows of
/// one photo together or not); `file` relative to the CSV's folder; a row without a box
/// is a photo known only by what it shows.
pub fn read_looks(csv_path: &Path) -> Result<Vec<LookPhoto>> {
    let bad = |message: String| Error::BadParameter { name: "looks", message };
    let (mut rdr, headers) = table::open(csv_path, "looks")?;
    let more = ", and for boxes kind,x,y,w,h";
    let [fc, tc] = table::required(&headers, ["file", "article_type"], csv_path, "looks", more)?;
    let cols = ["kind", "x", "y", "w", "h", "item"].map(|c| table::column(&headers, c));
    let dir = csv_path.parent().unwrap_or(Path::new("."));
    let mut order: Vec<PathBuf> = Vec::new();
    let mut by_file: BTreeMap<PathBuf, Vec<TrueGarment>> = BTreeMap::new();
    for (line, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| bad(e.to_string()))?;
        let get = |i: Option<usize>| i.and_then(|i| rec.get(i)).map(str::trim).unwrap_or("");
        let file = get(Some(fc));
        if file.is_empty() {
            continue;
        }
        let at = |what: &str| bad(format!("{} row {}: {what}", csv_path.display(), line + 2));
        let kind = match get(cols[0]) {
            "" => None,
            k => Some(k.parse::<Kind>().map_err(|e| at(&e))?),
        };
        let numbers: Vec<&str> = cols[1..5].iter().map(|&c| get(c)).collect();
        let region = if numbers.iter().all(|n| n.is_empty()) {
            None
        } else {
            let n = numbers
                .iter()
                .map(|n| n.parse::<u32>())
                .collect::<std::result::Result<Vec<u32>, _>>()
                .map_err(|_| at("x, y, w and h must be whole numbers of pixels"))?;
            Some(Crop { x: n[0], y: n[1], w: n[2], h: n[3] })
        };
        let item = Some(get(cols[5]).to_string()).filter(|s| !s.is_empty());
        let matches = table::match_list(get(Some(tc)));
        let path = dir.join(file);
        if !by_file.contains_key(&path) {
            order.push(path.clone());
        }
        by_file.entry(path).or_default().push(TrueGarment { kind, region, item, matches });
    }
    Ok(order
        .into_iter()
        .map(|file| {
            let garments = by_file.remove(&file).unwrap_or_default();
            LookPhoto { file, garments }
        })
        .collect())
}

/// Recall and precision of one kind of garment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindScores {
    pub garments: usize,
    pub recall: f64,
    pub precision: f64,
}

/// What `eval --looks` measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LooksReport {
    pub k: usize,
    pub photos: usize,
    pub unreadable: usize,
    /// True garments with a box, and the share found (IoU ≥ 0.5; and with the kind right).
    pub boxed_garments: usize,
    pub garment_recall: f64,
    pub garment_recall_with_kind: f64,
    /// Mean precision@k of the found garments' results over the true garments found.
    pub garment_precision: f64,
    /// Found garments per photo, and boxes found that match no true garment, per photo.
    pub garments_found_per_photo: f64,
    pub extra_per_photo: f64,
    pub per_kind: BTreeMap<String, KindScores>,
    /// Photos known by what they show only (no box).
    pub unboxed_photos: usize,
    /// Share of them where one garment found has a match in its top k.
    pub found_by_a_garment: f64,
    /// Share of them where at least one garment was found.
    pub at_least_one_garment: f64,
    /// Their own results' precision@k (the search without the feature).
    pub photo_precision: f64,
    /// Milliseconds per photo: every garment searched (median, mean), and the photo's
    /// plain search.
    pub look_ms_p50: f64,
    pub look_ms_mean: f64,
    pub plain_ms_p50: f64,
    /// Median milliseconds per photo by the number of garments found in it (and how many
    /// photos found that many).
    pub look_ms_p50_by_garments: BTreeMap<usize, (usize, f64)>,
}

fn share(hits: &[Hit], matches: &[String], own: Option<&String>, k: usize, col: &str) -> f64 {
    let kept: Vec<&Hit> = hits.iter().filter(|h| own != Some(&h.id)).take(k).collect();
    let right = kept
        .iter()
        .filter(|h| h.metadata.get(col).is_some_and(|v| matches.contains(&v.to_lowercase())))
        .count();
    right as f64 / k as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Find and search every garment of `photos`, as `query` says, and score them against
/// `column` (articleType).
pub fn score_looks(
    engine: &Engine,
    photos: &[LookPhoto],
    query: &Query,
    column: &str,
) -> Result<LooksReport> {
    let k = query.k;
    // One more result, for a garment's own item to be left out of.
    let q = Query { k: k + 1, ..query.clone() };
    let mut r = LooksReport { k, photos: photos.len(), ..Default::default() };
    let (mut look_ms, mut plain_ms) = (Vec::new(), Vec::new());
    let mut by_count: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let (mut found_total, mut extra_total) = (0usize, 0usize);
    let (mut hit_box, mut hit_kind, mut prec_sum) = (0usize, 0usize, 0.0);
    let mut kinds: BTreeMap<String, (usize, usize, f64)> = BTreeMap::new();
    let (mut by_garment, mut any_found, mut photo_prec) = (0usize, 0usize, 0.0);
    for photo in photos {
        let Ok(bytes) = crate::catalog::read_photo(&photo.file) else {
            r.unreadable += 1;
            continue;
        };
        let t = Instant::now();
        let plain = engine.search_photo(&bytes, &q);
        plain_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let look: Look = match engine.search_look(&bytes, &q) {
            Ok(l) => l,
            Err(e) if e.is_user_error() => {
                r.unreadable += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        let ms = t.elapsed().as_secs_f64() * 1e3;
        look_ms.push(ms);
        by_count.entry(look.garments.len()).or_default().push(ms);
        drop(plain);
        found_total += look.garments.len();
        let mut used = vec![false; look.garments.len()];
        for truth in &photo.garments {
            let Some(region) = truth.region else {
                r.unboxed_photos += 1;
                any_found += usize::from(!look.garments.is_empty());
                let own = truth.item.as_ref();
                let found = look
                    .garments
                    .iter()
                    .any(|g| share(&g.answer.hits, &truth.matches, own, k, column) > 0.0);
                by_garment += usize::from(found);
                photo_prec += share(&look.answer.hits, &truth.matches, own, k, column);
                continue;
            };
            r.boxed_garments += 1;
            let best = look
                .garments
                .iter()
                .enumerate()
                .map(|(i, g)| (i, crate::garment::iou(g.region, region)))
                .filter(|&(_, o)| o >= MATCH_IOU)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let kind = truth.kind.map_or("unknown".into(), |k| k.to_string());
            let e = kinds.entry(kind).or_default();
            e.0 += 1;
            if let Some((i, _)) = best {
                used[i] = true;
                let g = &look.garments[i];
                hit_box += 1;
                hit_kind += usize::from(Some(g.kind) == truth.kind);
                let p = share(&g.answer.hits, &truth.matches, truth.item.as_ref(), k, column);
                prec_sum += p;
                e.1 += 1;
                e.2 += p;
            }
        }
        if photo.garments.iter().any(|t| t.region.is_some()) {
            extra_total += used.iter().filter(|u| !**u).count();
        }
    }
    let read = (photos.len() - r.unreadable).max(1) as f64;
    r.garments_found_per_photo = found_total as f64 / read;
    r.extra_per_photo = extra_total as f64 / read;
    if r.boxed_garments > 0 {
        r.garment_recall = hit_box as f64 / r.boxed_garments as f64;
        r.garment_recall_with_kind = hit_kind as f64 / r.boxed_garments as f64;
        r.garment_precision = if hit_box > 0 { prec_sum / hit_box as f64 } else { 0.0 };
    }
    r.per_kind = kinds
        .into_iter()
        .map(|(kind, (n, found, p))| {
            let scores = KindScores {
                garments: n,
                recall: found as f64 / n as f64,
                precision: if found > 0 { p / found as f64 } else { 0.0 },
            };
            (kind, scores)
        })
        .collect();
    if r.unboxed_photos > 0 {
        let n = r.unboxed_photos as f64;
        r.found_by_a_garment = by_garment as f64 / n;
        r.at_least_one_garment = any_found as f64 / n;
        r.photo_precision = photo_prec / n;
    }
    r.look_ms_mean = look_ms.iter().sum::<f64>() / look_ms.len().max(1) as f64;
    r.look_ms_p50 = median(look_ms);
    r.look_ms_p50_by_garments =
        by_count.into_iter().map(|(n, ms)| (n, (ms.len(), median(ms)))).collect();
    r.plain_ms_p50 = median(plain_ms);
    Ok(r)
}
