//! The fashion model end to end on real photos: it is the default, says what a photo
//! looks like, ranks by the predicted category (and by similarity alone when told), finds
//! the garment in a snapshot, and its class heads file agrees with the network.

use std::path::Path;

use crate::common::fixtures::{copy_index, sample_index};
use crate::common::*;
use serde_json::Value;

/// The sample catalogue indexed with the defaults, shared by the run's tests.
fn index() -> &'static str {
    sample_index().path()
}

fn search(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["search", "--index", index(), "--json"];
    all.extend_from_slice(args);
    json_lines(&ok(&all))
}

fn query(name: &str) -> String {
    p(&fixture(&format!("queries/{name}"))).to_string()
}

/// Options a query photo is searched with: the T-shirt's by the whole photo. A known miss
/// of r3 (issue 28 notes): on this beige shirt on a beige blanket its garment mask is
/// sure only of the print, and the print's square alone looks like an undershirt; the
/// golden top 5 (tests/cli/mod.rs) pins that answer until localisation is fixed.
fn as_searched(file: &str) -> &'static [&'static str] {
    if file == "tshirt.jpg" { &["--locate", "off"] } else { &[] }
}

const KINDS: [(&str, &str); 4] = [
    ("tshirt.jpg", "Tshirts"),
    ("shoes.jpg", "Casual Shoes"),
    ("dress.jpg", "Dresses"),
    ("hat.jpg", "Caps"),
];

#[test]
fn the_fashion_model_is_the_default_and_names_what_a_photo_shows() {
    let info: Value = serde_json::from_str(&ok(&["info", "--index", index(), "--json"])).unwrap();
    assert_eq!(info["model"], lookalike::model::FASHION);
    assert_eq!(info["dimension"], 256 + lookalike::colour::BINS);
    assert_eq!(info["input_size"], 128);
    for (file, kind) in KINDS {
        let q = query(file);
        let mut args = vec![q.as_str()];
        args.extend_from_slice(as_searched(file));
        let r = &search(&args)[0];
        let p = &r["predicted"][0];
        assert_eq!(p["column"], "articleType", "{file}: {r}");
        assert_eq!(p["value"], kind, "{file}: {r}");
        assert_eq!(p["source"], "both");
        let prob = p["probability"].as_f64().unwrap();
        assert!(prob > 0.4 && prob <= 1.0, "{file}: {prob}");
        // The people-facing line says the same.
        let mut args = vec!["search", "--index", index(), q.as_str()];
        args.extend_from_slice(as_searched(file));
        let text = ok(&args);
        assert!(text.contains(&format!("looks like: {kind} ")), "{text}");
    }
}

/// Every result's score: the similarity blended with the predicted category.
#[test]
fn category_ranking_blends_similarity_with_the_prediction() {
    let share = 0.3;
    for (file, kind) in KINDS {
        let q = query(file);
        let searched = as_searched(file);
        let ranked = &search(&[&["-k", "5", "--category", "0.3", &q], searched].concat())[0];
        // Similarity alone, deep enough to hold every ranked item.
        let plain = &search(&[&["-k", "387", "--category", "0", &q], searched].concat())[0];
        let p = ranked["predicted"][0]["probability"].as_f64().unwrap();
        assert_eq!(ranked["predicted"][0]["value"], kind);
        let cosine = |id: &Value| {
            plain["results"].as_array().unwrap().iter().find(|h| &h["id"] == id).unwrap()["score"]
                .as_f64()
                .unwrap()
        };
        let hits = ranked["results"].as_array().unwrap();
        assert_eq!(hits.len(), 5);
        for h in hits {
            // The sample has no colour column: only the article type counts. Another
            // kind's probability is at most what the predicted one leaves.
            let s = h["score"].as_f64().unwrap();
            let base = (1.0 - share) * cosine(&h["id"]);
            if h["metadata"]["articleType"] == kind {
                assert!(
                    (s - (base + share * p)).abs() < 1e-4,
                    "{file} {}: {s} vs {base} + {share} * {p}",
                    h["id"]
                );
            } else {
                assert!(s >= base - 1e-4 && s <= base + share * (1.0 - p) + 1e-4, "{file}: {h}");
            }
        }
        let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
        // Ranking by category never finds fewer of the predicted kind than similarity alone.
        let of_kind = |r: &Value, n: usize| {
            r["results"]
                .as_array()
                .unwrap()
                .iter()
                .take(n)
                .filter(|h| h["metadata"]["articleType"] == kind)
                .count()
        };
        assert!(of_kind(ranked, 5) >= of_kind(plain, 5), "{file}");
        // Most of them (the T-shirt, searched whole, shares two places with tops).
        assert!(of_kind(ranked, 5) >= 3, "{file}: {ranked}");
    }
}

/// A category-ranked snapshot's last place goes to the most similar item the places before
/// do not show, whatever its kind; those places are the blend's. A catalogue item's
/// answer stays the blend's alone.
#[test]
fn a_snapshots_last_place_is_the_most_similar_item_not_shown_before() {
    let ids = |r: &Value| -> Vec<String> {
        r["results"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().into()).collect()
    };
    let mut photos: Vec<String> = KINDS.iter().map(|(f, _)| query(f)).collect();
    // Street photos of the sample catalogue, searched as photos (they are snapshots).
    photos.extend(
        ["1012", "1024", "1062", "1100"]
            .map(|id| p(&sample().join(format!("images/{id}.jpg"))).to_string()),
    );
    let mut moved = 0;
    for photo in &photos {
        let five = &search(&["-k", "5", photo])[0];
        let got = ids(five);
        let blend = ids(&search(&["-k", "2", photo])[0]);
        let plain = ids(&search(&["-k", "20", "--category", "0", photo])[0]);
        assert_eq!(got[..2], blend[..], "{photo}: the first places are the blend's");
        let want = plain.iter().find(|id| !got[..4].contains(id)).unwrap();
        assert_eq!(&got[4], want, "{photo}: {got:?}, by similarity {plain:?}");
        let scores: Vec<f64> = five["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["score"].as_f64().unwrap())
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{photo}: {scores:?}");
        // Six results keep the blend's own 5th place (their 6th is the one that moves),
        // as five do when told to rank every place by the blend.
        let six = ids(&search(&["-k", "6", photo])[0]);
        let off = ids(&search(&["-k", "5", "--keep-nearest", "off", photo])[0]);
        assert_eq!(off[..], six[..5], "{photo}: --keep-nearest off");
        if six[4] != got[4] {
            moved += 1;
        }
    }
    assert!(moved > 0, "no photo's blend put another item in the 5th place");
    // A catalogue item (not a snapshot) keeps the blend's order: five results begin as six do.
    for id in ["1012", "1024", "1062", "1100"] {
        let five = ids(&search(&["-k", "5", "--similar-to", id])[0]);
        let six = ids(&search(&["-k", "6", "--similar-to", id])[0]);
        assert_eq!(five[..], six[..5], "{id}");
    }
}

#[test]
fn category_zero_is_plain_similarity_and_bad_shares_are_refused() {
    let own = sample().join("images/1087.jpg");
    let r = &search(&["-k", "1", "--query-resize", "pad", "--category", "0", p(&own)])[0];
    assert_eq!(r["results"][0]["id"], "1087");
    assert!(r["results"][0]["score"].as_f64().unwrap() > 0.999, "{r}");
    for bad in ["--category=-0.1", "--category=0.95", "--category=x"] {
        let out = lookalike(&["search", "--index", index(), bad, p(&own)]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("category"), "{out:?}");
    }
}

/// A shoe snapshot shrunk into the corner of a large patterned "floor".
fn small_garment_on_a_floor(dir: &Path) -> (std::path::PathBuf, (u32, u32, u32, u32)) {
    let shoe = image::open(fixture("queries/shoes.jpg")).unwrap().to_rgb8();
    let (w, h) = (720u32, 540u32);
    let mut floor = image::RgbImage::from_fn(w, h, |x, y| {
        // Floorboards: stripes with a grain.
        let board = (y / 45) % 2;
        let grain = ((x as f32 * 0.07 + (y as f32 * 0.3).sin() * 3.0).sin() * 18.0) as i32;
        let base = if board == 0 { 150 } else { 128 };
        let v = (base + grain).clamp(0, 255) as u8;
        image::Rgb([v, (i32::from(v) * 3 / 4) as u8, (i32::from(v) / 2) as u8])
    });
    let small = image::imageops::resize(&shoe, 180, 180, image::imageops::FilterType::Triangle);
    let (x, y) = (470, 300);
    image::imageops::replace(&mut floor, &small, i64::from(x), i64::from(y));
    let path = dir.join("floor.png");
    floor.save(&path).unwrap();
    (path, (x, y, 180, 180))
}

#[test]
fn a_snapshot_is_searched_by_its_garment() {
    let dir = tempfile::tempdir().unwrap();
    let (photo, (gx, gy, gw, gh)) = small_garment_on_a_floor(dir.path());
    let r = &search(&["-k", "5", p(&photo)])[0];
    let g = &r["garment_box"];
    assert!(g.is_object(), "no garment found: {r}");
    let (x, y, w, h) = (
        g["x"].as_u64().unwrap() as u32,
        g["y"].as_u64().unwrap() as u32,
        g["w"].as_u64().unwrap() as u32,
        g["h"].as_u64().unwrap() as u32,
    );
    // The square holds the shoe's centre and is much smaller than the photo.
    let (cx, cy) = (gx + gw / 2, gy + gh / 2);
    assert!(x <= cx && cx <= x + w && y <= cy && cy <= y + h, "{g} vs the shoe at {gx},{gy}");
    assert!(w * h < 720 * 540 / 3, "{g}");
    assert_eq!(r["predicted"][0]["value"], "Casual Shoes", "{r}");
    let shoes = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["metadata"]["articleType"] == "Casual Shoes")
        .count();
    // Searched by its whole floor, the same photo finds fewer shoes (or as many).
    let off = &search(&["-k", "5", "--locate", "off", p(&photo)])[0];
    assert!(off.get("garment_box").is_none());
    let shoes_off = off["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["metadata"]["articleType"] == "Casual Shoes")
        .count();
    assert!(shoes >= shoes_off, "located {shoes}, whole photo {shoes_off}");
    assert!(shoes >= 4, "{r}");
    // A given crop is searched as given.
    let cropped = &search(&["--crop", "470,300,180,180", p(&photo)])[0];
    assert!(cropped.get("garment_box").is_none());
}

#[test]
fn the_heads_file_computes_the_networks_own_probabilities() {
    let model = lookalike::model::resolve("fashion").unwrap();
    let heads = lookalike::category::Heads::load(&model.heads_path().unwrap()).unwrap();
    let img = lookalike::preprocess::decode(&std::fs::read(fixture("queries/dress.jpg")).unwrap())
        .unwrap();
    let tensor = lookalike::preprocess::tensor(&img, &model.spec, None).unwrap();
    let embedder =
        lookalike::embed::Embedder::new(&model, lookalike::embed::BackendKind::Ort).unwrap();
    let names = ["embedding", "article_probs", "colour_probs"];
    let mut out = embedder.named_outputs(&tensor, model.spec.size, &names).unwrap().into_iter();
    let mut next = || out.next().unwrap();
    let (e, article, colour) = (next(), next(), next());
    assert!((e.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4, "unit embedding");
    for (head, want) in heads.heads().iter().zip([article, colour]) {
        let got = heads.probabilities(head, &e);
        assert_eq!(got.len(), want.len(), "{}", head.column());
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-4, "{}: {worst}", head.column());
    }
    assert_eq!(heads.heads()[0].column(), "articleType");
    assert_eq!(heads.heads()[1].column(), "baseColour");
}

#[test]
fn a_damaged_heads_file_costs_the_predictions_not_the_search() {
    let dir = copy_index(sample_index());
    let copy = dir.path();
    std::fs::write(copy.join(lookalike::category::HEADS_FILE), b"{ not json").unwrap();
    let q = query("hat.jpg");
    let out = ok(&["search", "--index", p(copy), "--json", &q]);
    let r = &json_lines(&out)[0];
    assert_eq!(r["results"].as_array().unwrap().len(), 5);
    assert!(r.get("predicted").is_none(), "{r}");
    // Asking for category ranking names the problem.
    let out = lookalike(&["search", "--index", p(copy), "--category", "0.3", &q]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("heads"), "{out:?}");
}

#[test]
fn eval_holdout_keeps_the_outside_photos_test_part() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let mut csv = String::from("file,label,match_article_types\n");
    let (mut test, mut names) = (0, 0);
    for i in 0..40 {
        let name = format!("q{i}.jpg");
        let (file, kind) = KINDS[i % 4];
        std::fs::copy(fixture(&format!("queries/{file}")), images.join(&name)).unwrap();
        csv.push_str(&format!("{name},{kind},{kind}\n"));
        names += 1;
        test += usize::from(lookalike::split::query_in_test(&name));
    }
    std::fs::write(dir.path().join("q.csv"), csv).unwrap();
    let qcsv = dir.path().join("q.csv");
    let all = &json_lines(&ok(&["eval", "--index", index(), "--queries", p(&qcsv), "--json"]))[0];
    let held = &json_lines(&ok(&[
        "eval",
        "--index",
        index(),
        "--queries",
        p(&qcsv),
        "--holdout",
        "--json",
    ]))[0];
    assert_eq!(all["queries"], names);
    assert_eq!(held["queries"], test);
    assert!(test > 0 && test < names);
    assert_eq!((all["split"].as_str(), held["split"].as_str()), (Some("all"), Some("test")));
    assert!(held["precision"].as_f64().unwrap() >= 0.8, "{held}");
}

/// The sample index opened in this process, once: LMDB opens a folder once per process.
fn engine() -> &'static lookalike::Engine {
    static ENGINE: std::sync::OnceLock<lookalike::Engine> = std::sync::OnceLock::new();
    ENGINE.get_or_init(|| {
        let at = lookalike::location::Location::Folder(index().into());
        lookalike::Engine::open(&at, test_backend()).unwrap()
    })
}

fn embedded(engine: &lookalike::Engine, img: &image::RgbImage, q: &lookalike::Query) -> Vec<f32> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    engine.embed_photo(bytes.get_ref(), q).unwrap().0.vector
}

#[test]
fn flip_views_make_a_photo_and_its_mirror_embed_alike() {
    let engine = engine();
    let photo = image::open(fixture("queries/tshirt.jpg")).unwrap().to_rgb8();
    let mirror = image::imageops::flip_horizontal(&photo);
    let q = |flip| lookalike::Query {
        flip: Some(flip),
        locate: Some(false),
        resize: lookalike::preprocess::QueryResize::Crop,
        ..lookalike::Query::default()
    };
    let plain = cosine(&embedded(engine, &photo, &q(false)), &embedded(engine, &mirror, &q(false)));
    let flipped = cosine(&embedded(engine, &photo, &q(true)), &embedded(engine, &mirror, &q(true)));
    // The two views of each are the same two squares (up to a pixel of centring).
    assert!(flipped > 0.995, "with flip views {flipped}, without {plain}");
    assert!(flipped > plain, "with flip views {flipped}, without {plain}");
    // And the views change the vector: the flag is not ignored.
    let own = cosine(&embedded(engine, &photo, &q(true)), &embedded(engine, &photo, &q(false)));
    assert!(own < 0.9999, "{own}");
}

#[test]
fn a_snapshots_colour_is_its_garments_not_its_floors() {
    let engine = engine();
    let dir = tempfile::tempdir().unwrap();
    let (photo, (gx, gy, gw, gh)) = small_garment_on_a_floor(dir.path());
    let photo = image::open(photo).unwrap().to_rgb8();
    let colour = |v: &[f32]| {
        let mut h = v[v.len() - lookalike::colour::BINS..].to_vec();
        let n = h.iter().map(|x| x * x).sum::<f32>().sqrt();
        h.iter_mut().for_each(|x| *x /= n);
        h
    };
    let hist = |img: &image::RgbImage| {
        lookalike::colour::histogram(img.pixels().map(|p| p.0.map(f32::from)))
    };
    let floor = hist(&image::imageops::crop_imm(&photo, 0, 0, 400, 250).to_image());
    let shoe =
        hist(&image::imageops::crop_imm(&photo, gx + 20, gy + 20, gw - 40, gh - 40).to_image());
    let (q, bytes) = (lookalike::Query::default(), {
        let mut b = std::io::Cursor::new(Vec::new());
        photo.write_to(&mut b, image::ImageFormat::Png).unwrap();
        b.into_inner()
    });
    let (located, _) = engine.embed_photo(&bytes, &q).unwrap();
    assert!(located.garment_colour && located.snapshot);
    let off = embedded(engine, &photo, &lookalike::Query { locate: Some(false), ..q });
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let (masked, square) = (colour(&located.vector), colour(&off));
    // The square's colour is mostly floor; the garment's is mostly shoe.
    assert!(
        dot(&square, &floor) > dot(&masked, &floor),
        "{} {}",
        dot(&square, &floor),
        dot(&masked, &floor)
    );
    assert!(
        dot(&masked, &shoe) > dot(&square, &shoe),
        "{} {}",
        dot(&masked, &shoe),
        dot(&square, &shoe)
    );
}

#[test]
fn a_query_naming_its_catalogue_item_does_not_find_it() {
    // Catalogue photos as queries, matched by their own unique display name: each finds
    // itself in its top 5, unless its row names it as its item.
    let dir = tempfile::tempdir().unwrap();
    let styles = std::fs::read_to_string(sample().join("styles.csv")).unwrap();
    let mut plain = String::from("file,label,match_article_types\n");
    let mut own = String::from("file,label,match_article_types,item\n");
    for row in styles.lines().skip(1).take(8) {
        let f: Vec<&str> = row.split(',').collect();
        let (id, name) = (f[0], f[5]);
        plain.push_str(&format!("{id}.jpg,l,{name}\n"));
        own.push_str(&format!("{id}.jpg,l,{name},{id}\n"));
    }
    let images = sample().join("images");
    let eval = |csv: &str| {
        let path = dir.path().join("q.csv");
        std::fs::write(&path, csv).unwrap();
        let args = [
            "eval",
            "--index",
            index(),
            "--queries",
            p(&path),
            "--images",
            p(&images),
            "--match-column",
            "productDisplayName",
            // Squared and seen as the index saw them, ranked by similarity alone.
            "--query-resize",
            "pad",
            "--locate",
            "off",
            "--category",
            "0",
            "--json",
        ];
        json_lines(&ok(&args))[0]["none_correct"].as_f64().unwrap()
    };
    assert_eq!(eval(&plain), 0.0);
    assert_eq!(eval(&own), 1.0);
    // Colours to match need an index that knows them: the sample has no baseColour.
    std::fs::write(
        dir.path().join("c.csv"),
        "file,match_article_types,match_base_colours\n1000.jpg,Tshirts,Red\n",
    )
    .unwrap();
    let out = lookalike(&[
        "eval",
        "--index",
        index(),
        "--queries",
        p(&dir.path().join("c.csv")),
        "--images",
        p(&images),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("baseColour"), "{out:?}");
}

/// The int8 variant's vectors are r3's within quantisation's error: a catalogue photo
/// embedded by the int8 model finds itself first among the photos embedded by r3, and
/// the other way round (issue 31: vectors of the variants stay comparable).
#[test]
fn the_int8_variant_and_r3_embed_a_photo_alike() {
    let embed = |name: &str| {
        let model = lookalike::model::resolve(name).unwrap();
        let embedder =
            lookalike::embed::Embedder::new(&model, lookalike::embed::BackendKind::Ort).unwrap();
        (1000..1040)
            .map(|id| {
                let bytes = std::fs::read(sample().join(format!("images/{id}.jpg"))).unwrap();
                let img = lookalike::preprocess::decode(&bytes).unwrap();
                embedder.embed_image(&img, None).unwrap()
            })
            .collect::<Vec<_>>()
    };
    let (fp32, int8) = (embed("fashion"), embed("fashion-int8"));
    for (a, b) in [(&fp32, &int8), (&int8, &fp32)] {
        for (i, v) in a.iter().enumerate() {
            let best = (0..b.len()).max_by(|&x, &y| cosine(v, &b[x]).total_cmp(&cosine(v, &b[y])));
            assert_eq!(best, Some(i), "photo {} finds another first", 1000 + i);
            assert!(cosine(v, &b[i]) > 0.95, "photo {}: {}", 1000 + i, cosine(v, &b[i]));
        }
    }
}

/// Query photos are embedded by r3's int8 twin or by r3 itself (`--query-precision`),
/// against the same fp32 catalogue vectors: each garment is named alike and finds mostly
/// the same items either way (issue 31); an index of a model without a twin refuses
/// `int8`, and `fp32` is always there.
#[test]
fn query_photos_are_embedded_by_the_int8_twin_or_by_the_model_alike() {
    require_ort();
    let ids = |r: &Value| -> Vec<String> {
        r["results"].as_array().unwrap().iter().map(|h| h["id"].to_string()).collect()
    };
    for (file, kind) in KINDS {
        let q = query(file);
        let at = |precision: &str| {
            let mut args = vec![q.as_str(), "--query-precision", precision];
            args.extend_from_slice(as_searched(file));
            search(&args).remove(0)
        };
        let (fp32, int8) = (at("fp32"), at("int8"));
        assert_eq!(fp32["predicted"][0]["value"], kind, "{file}: {fp32}");
        assert_eq!(int8["predicted"][0]["value"], kind, "{file}: {int8}");
        let (a, b) = (ids(&fp32), ids(&int8));
        let shared = a.iter().filter(|id| b.contains(id)).count();
        assert!(shared >= 3, "{file}: {a:?} against {b:?}");
        // Each one's best is among the other's five.
        assert!(b.contains(&a[0]) && a.contains(&b[0]), "{file}: {a:?} against {b:?}");
    }
    let lite0 = crate::common::fixtures::sample_lite0_index().path();
    let q = query("shoes.jpg");
    let out = lookalike(&["search", "--index", lite0, &q, "--query-precision", "int8"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no int8 twin") && err.contains("efficientnet-lite0"), "{err}");
    ok(&["search", "--index", lite0, &q, "--query-precision", "fp32"]);
    let out = lookalike(&["search", "--index", index(), &q, "--query-precision", "int4"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("auto, fp32, int8"), "{out:?}");
}
