#![allow(clippy::unwrap_used, clippy::expect_used)]

use ndarray::{Array1, Array2};

use super::train::{SplitMix, TrainConfig, TrainData, fit, loss_and_grads};
use super::*;

fn meta(input_dim: usize, layers: Vec<usize>, classes: usize) -> ProjectionMeta {
    ProjectionMeta {
        label: "articleType".into(),
        classes: (0..classes).map(|c| format!("class{c}")).collect(),
        input_dim,
        layers,
        model_hash: "h".into(),
        holdout_excluded: true,
        items: 0,
        config: TrainConfig { scale: 4.0, ..TrainConfig::default() },
        final_loss: 0.0,
        final_accuracy: 0.0,
        seconds: 0.0,
    }
}

fn random_projection(rng: &mut SplitMix, d: usize, widths: &[usize], classes: usize) -> Projection {
    let mut layers = Vec::new();
    let mut fan_in = d;
    for &out in widths {
        layers.push(Dense {
            w: Array2::from_shape_simple_fn((out, fan_in), || rng.uniform(0.8)),
            b: Array1::from_shape_simple_fn(out, || rng.uniform(0.3)),
        });
        fan_in = out;
    }
    let proxies = Array2::from_shape_simple_fn((classes, fan_in), || rng.uniform(1.0));
    Projection::new(
        meta(d, widths.to_vec(), classes),
        Array1::from_shape_simple_fn(d, || rng.uniform(0.1)),
        layers,
        proxies,
    )
}

fn loss_of(p: &Projection, x: &Array2<f32>, y: &[u32]) -> f64 {
    f64::from(loss_and_grads(p, x.view(), y, 4.0).0)
}

/// Every analytic gradient against a central finite difference of the loss, for a
/// linear projection and one with a hidden ReLU layer.
#[test]
fn gradients_match_finite_differences() {
    for widths in [vec![4usize], vec![5, 4]] {
        let mut rng = SplitMix::new(7);
        let (d, classes, b) = (6, 3, 5);
        let p = random_projection(&mut rng, d, &widths, classes);
        let x = Array2::from_shape_simple_fn((b, d), || rng.uniform(1.5));
        let y: Vec<u32> = (0..b as u32).map(|i| i % classes as u32).collect();
        let (_, _, grads) = loss_and_grads(&p, x.view(), &y, 4.0);
        let eps = 1e-3f32;
        let mut checked = 0;
        let mut compare = |analytic: f32, plus: f64, minus: f64| {
            let numeric = (plus - minus) / (2.0 * f64::from(eps));
            let tol = 2e-3 + 2e-2 * numeric.abs();
            assert!(
                (f64::from(analytic) - numeric).abs() < tol,
                "widths {widths:?}: analytic {analytic} vs numeric {numeric}"
            );
            checked += 1;
        };
        for l in 0..p.layers.len() {
            for idx in 0..p.layers[l].w.len() {
                let (r, c) = (idx / p.layers[l].w.ncols(), idx % p.layers[l].w.ncols());
                let mut hi = p.clone();
                hi.layers[l].w[[r, c]] += eps;
                let mut lo = p.clone();
                lo.layers[l].w[[r, c]] -= eps;
                compare(grads.layers[l].0[[r, c]], loss_of(&hi, &x, &y), loss_of(&lo, &x, &y));
            }
            for i in 0..p.layers[l].b.len() {
                let mut hi = p.clone();
                hi.layers[l].b[i] += eps;
                let mut lo = p.clone();
                lo.layers[l].b[i] -= eps;
                compare(grads.layers[l].1[i], loss_of(&hi, &x, &y), loss_of(&lo, &x, &y));
            }
        }
        for r in 0..classes {
            for c in 0..p.proxies.ncols() {
                let mut hi = p.clone();
                hi.proxies[[r, c]] += eps;
                let mut lo = p.clone();
                lo.proxies[[r, c]] -= eps;
                compare(grads.proxies[[r, c]], loss_of(&hi, &x, &y), loss_of(&lo, &x, &y));
            }
        }
        let params: usize =
            p.layers.iter().map(|l| l.w.len() + l.b.len()).sum::<usize>() + p.proxies.len();
        assert_eq!(checked, params);
    }
}

/// Classes told apart by a few of many dimensions, the rest loud noise: plain cosine
/// neighbours are mostly of other classes, projected ones of the same class.
fn noisy_classes(n: usize, d: usize, classes: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<u32>) {
    let mut rng = SplitMix::new(seed);
    let centres: Vec<Vec<f32>> =
        (0..classes).map(|_| (0..4).map(|_| rng.uniform(1.0)).collect()).collect();
    let mut xs = Vec::with_capacity(n);
    let mut ys = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % classes;
        let mut v: Vec<f32> = (0..d).map(|_| rng.uniform(1.0)).collect();
        for (j, m) in centres[c].iter().enumerate() {
            v[j] = m * 1.5 + rng.uniform(0.2);
        }
        xs.push(v);
        ys.push(c as u32);
    }
    (xs, ys)
}

/// Share of items whose nearest other item (cosine over `vectors`) has their class.
fn nearest_neighbour_accuracy(vectors: &[Vec<f32>], ys: &[u32]) -> f64 {
    let unit: Vec<Vec<f32>> = vectors
        .iter()
        .map(|v| {
            let n = crate::kernel::dot(v, v).sqrt();
            v.iter().map(|a| a / n).collect()
        })
        .collect();
    let mut right = 0;
    for i in 0..unit.len() {
        let best = (0..unit.len())
            .filter(|&j| j != i)
            .max_by(|&a, &b| {
                crate::kernel::dot(&unit[i], &unit[a])
                    .total_cmp(&crate::kernel::dot(&unit[i], &unit[b]))
            })
            .unwrap();
        if ys[best] == ys[i] {
            right += 1;
        }
    }
    right as f64 / unit.len() as f64
}

fn data<'a>(xs: &'a [Vec<f32>], ys: &[u32], classes: usize, d: usize) -> TrainData<'a> {
    TrainData {
        vectors: xs.iter().map(Vec::as_slice).collect(),
        labels: ys.to_vec(),
        classes: (0..classes).map(|c| format!("class{c}")).collect(),
        input_dim: d,
        label: "articleType".into(),
        model_hash: "h".into(),
        holdout_excluded: true,
    }
}

#[test]
fn training_pulls_classes_together_on_unseen_items() {
    let (d, classes) = (128, 6);
    let (mut train_x, mut train_y) = noisy_classes(3300, d, classes, 1);
    let (test_x, test_y) = (train_x.split_off(3000), train_y.split_off(3000));
    let before = nearest_neighbour_accuracy(&test_x, &test_y);
    let cfg = TrainConfig { hidden: 32, dim: 16, epochs: 30, batch: 128, ..TrainConfig::default() };
    let mut epochs = Vec::new();
    let proj = fit(&data(&train_x, &train_y, classes, d), &cfg, &mut |s| epochs.push(*s)).unwrap();
    assert_eq!(epochs.len(), 30);
    assert!(epochs[29].loss < epochs[0].loss * 0.5, "{:?}", (epochs[0], epochs[29]));
    let rows: Vec<&[f32]> = test_x.iter().map(Vec::as_slice).collect();
    let projected = proj.project(&rows);
    for row in projected.rows() {
        assert!((row.dot(&row) - 1.0).abs() < 1e-4);
    }
    let projected: Vec<Vec<f32>> = projected.rows().into_iter().map(|r| r.to_vec()).collect();
    let after = nearest_neighbour_accuracy(&projected, &test_y);
    assert!(before < 0.6, "the raw vectors should confuse the classes: {before}");
    assert!(after > before + 0.2, "before {before}, after {after}");
    // The proxies name the class of an unseen item.
    let right = test_x
        .iter()
        .zip(&test_y)
        .filter(|(v, y)| proj.classify(v, 1)[0].0 == format!("class{y}"))
        .count();
    let accuracy = right as f64 / test_x.len() as f64;
    assert!(accuracy > 0.8, "classified {accuracy}");
}

#[test]
fn training_is_reproducible_from_its_seed() {
    let (d, classes) = (16, 3);
    let (xs, ys) = noisy_classes(90, d, classes, 3);
    let cfg = TrainConfig { hidden: 8, dim: 4, epochs: 3, batch: 16, ..TrainConfig::default() };
    let mut a = fit(&data(&xs, &ys, classes, d), &cfg, &mut |_| {}).unwrap();
    let mut b = fit(&data(&xs, &ys, classes, d), &cfg, &mut |_| {}).unwrap();
    a.meta_mut().seconds = 0.0;
    b.meta_mut().seconds = 0.0;
    assert_eq!(a.to_bytes(), b.to_bytes());
    let other = TrainConfig { seed: 99, ..cfg };
    let c = fit(&data(&xs, &ys, classes, d), &other, &mut |_| {}).unwrap();
    assert_ne!(a.layers, c.layers);
}

#[test]
fn bad_training_input_is_refused() {
    let (xs, ys) = noisy_classes(20, 8, 2, 4);
    let good = data(&xs, &ys, 2, 8);
    let cfg = TrainConfig { epochs: 1, ..TrainConfig::default() };
    let one_class = TrainData { classes: vec!["a".into()], labels: vec![0; 20], ..good.clone() };
    assert!(matches!(fit(&one_class, &cfg, &mut |_| {}), Err(ProjectionError::NotEnoughData(_))));
    let wide = TrainData { input_dim: 9, ..good.clone() };
    assert!(matches!(
        fit(&wide, &cfg, &mut |_| {}),
        Err(ProjectionError::DimensionMismatch { expected: 9, got: 8 })
    ));
    for bad in [
        TrainConfig { epochs: 0, ..cfg.clone() },
        TrainConfig { dim: 0, ..cfg.clone() },
        TrainConfig { learning_rate: f32::NAN, ..cfg.clone() },
        TrainConfig { batch: 0, ..cfg.clone() },
    ] {
        assert!(matches!(fit(&good, &bad, &mut |_| {}), Err(ProjectionError::BadParameter { .. })));
    }
}

#[test]
fn file_round_trips_and_damage_is_reported() {
    let mut rng = SplitMix::new(11);
    let p = random_projection(&mut rng, 6, &[5, 4], 3);
    let dir = tempfile::tempdir().unwrap();
    use crate::store::Store as _;
    let store = crate::store::LmdbStore::open(dir.path()).unwrap();
    assert!(Projection::read(&store).unwrap().is_none());
    store.write_file(PROJECTION_FILE, &p.to_bytes()).unwrap();
    assert_eq!(Projection::read(&store).unwrap().unwrap(), p);
    let path = dir.path().join(PROJECTION_FILE);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");

    let bytes = std::fs::read(&path).unwrap();
    let mut flipped = bytes.clone();
    let at = flipped.len() - 40;
    flipped[at] ^= 1;
    assert!(matches!(
        Projection::from_bytes(&flipped, &path),
        Err(ProjectionError::Corrupt { .. })
    ));
    assert!(matches!(
        Projection::from_bytes(&bytes[..bytes.len() / 2], &path),
        Err(ProjectionError::Corrupt { .. })
    ));
    assert!(matches!(
        Projection::from_bytes(b"PK\x03\x04 not a projection at all", &path),
        Err(ProjectionError::NotAProjection { .. })
    ));
    let mut newer = bytes.clone();
    newer[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert!(matches!(
        Projection::from_bytes(&newer, &path),
        Err(ProjectionError::UnsupportedVersion { found, .. }) if found == FORMAT_VERSION + 1
    ));
    assert!(matches!(p.check_model(7, "h"), Err(ProjectionError::DimensionMismatch { .. })));
    assert!(matches!(p.check_model(6, "other"), Err(ProjectionError::ModelMismatch)));
    assert!(p.check_model(6, "h").is_ok());
}

/// The projection reads only the model's part of a stored vector and its length does
/// not matter: a colour histogram appended, or a rescaled vector, projects the same.
#[test]
fn projection_ignores_colour_part_and_length() {
    let mut rng = SplitMix::new(12);
    let p = random_projection(&mut rng, 6, &[4], 3);
    let v: Vec<f32> = (0..6).map(|_| rng.uniform(1.0)).collect();
    let mut with_colour: Vec<f32> = v.iter().map(|a| a * 0.7).collect();
    with_colour.extend([0.5, 0.1, 0.2]);
    let a = p.project(&[&v]);
    let b = p.project(&[&with_colour]);
    for (x, y) in a.iter().zip(b.iter()) {
        assert!((x - y).abs() < 1e-5);
    }
    // Rescoring: mix 0 keeps the stored scores, mix 1 is the projected cosine alone.
    let c: Vec<f32> = (0..6).map(|_| rng.uniform(1.0)).collect();
    let cands = [(c.as_slice(), 0.25f32)];
    assert_eq!(p.rescore(&v, &cands, 0.0), vec![0.25]);
    let pc = p.project(&[&c]);
    let cos = a.row(0).dot(&pc.row(0));
    assert!((p.rescore(&v, &cands, 1.0)[0] - cos).abs() < 1e-5);
    assert!(check_mix(1.5).is_err() && check_mix(-0.1).is_err() && check_mix(0.5).is_ok());
}

/// Re-scoring items through the cache gives the numbers of a plain re-score, whether
/// their projections are computed (first call) or taken from the cache (second).
#[test]
fn cached_rescoring_matches_plain_rescoring() {
    let mut rng = SplitMix::new(13);
    let p = random_projection(&mut rng, 6, &[5, 4], 3);
    let vectors: Vec<Vec<f32>> =
        (0..7).map(|_| (0..6).map(|_| rng.uniform(1.0)).collect()).collect();
    let query: Vec<f32> = (0..6).map(|_| rng.uniform(1.0)).collect();
    let plain: Vec<(&[f32], f32)> =
        vectors.iter().enumerate().map(|(i, v)| (v.as_slice(), i as f32 * 0.1)).collect();
    let keyed: Vec<(u32, &[f32], f32)> =
        plain.iter().enumerate().map(|(i, (v, s))| (100 + i as u32, *v, *s)).collect();
    let want = p.rescore(&query, &plain, 0.6);
    let cache = ProjectedCache::default();
    assert!(cache.is_empty());
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
    // Part of them first, then all: hits and misses mixed in one call.
    let first = p.rescore_items(&cache, &query, &keyed[..3], 0.6);
    assert!(close(&first, &want[..3]), "{first:?} vs {want:?}");
    assert_eq!(cache.len(), 3);
    let all = p.rescore_items(&cache, &query, &keyed, 0.6);
    assert!(close(&all, &want), "{all:?} vs {want:?}");
    assert_eq!(cache.len(), 7);
    let again = p.rescore_items(&cache, &query, &keyed, 0.6);
    assert_eq!(again, all);
}
