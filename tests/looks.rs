//! Shop the look end to end: `search --all-garments` finds every garment of an outfit
//! photo and searches each, a snapshot of one garment is one garment, and `eval --looks`
//! scores a looks CSV (and names what is wrong with a bad one).

use crate::common::fixtures::sample_index;
use crate::common::*;
use serde_json::Value;

fn index() -> &'static str {
    sample_index().path()
}

fn query(name: &str) -> String {
    p(&fixture(&format!("queries/{name}"))).to_string()
}

fn look(photo: &str) -> Value {
    let out = ok(&["search", "--index", index(), "--json", "--all-garments", &query(photo)]);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "one line per photo: {out}");
    lines.into_iter().next().unwrap()
}

fn kinds(v: &Value) -> Vec<String> {
    v["garments"].as_array().unwrap().iter().map(|g| g["kind"].as_str().unwrap().into()).collect()
}

#[test]
fn an_outfit_photo_gives_every_garment_with_its_results() {
    let v = look("outfit.jpg");
    assert!(v["query"].as_str().unwrap().ends_with("outfit.jpg"), "{v}");
    let garments = v["garments"].as_array().unwrap();
    // Four tiles: a T-shirt, trousers, shoes and a cap, each found as its kind.
    let mut ks = kinds(&v);
    ks.sort();
    assert_eq!(ks, ["bottom", "hat", "shoes", "top"], "{v}");
    for g in garments {
        assert_eq!(g["results"].as_array().unwrap().len(), 5, "{g}");
        assert!(g["box"]["w"].as_u64().unwrap() > 0, "{g}");
        // Each garment's results are of its kind: the whole photo's search (tops and
        // trousers) is no garment's, not even the shoes' it overlaps most.
        let subs = match g["kind"].as_str().unwrap() {
            "top" => "Topwear",
            "bottom" => "Bottomwear",
            "shoes" => "Shoes",
            _ => "Headwear",
        };
        let of_kind = g["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["metadata"]["subCategory"] == subs)
            .count();
        assert!(of_kind >= 4, "{}: {of_kind} of 5 are {subs}: {g}", g["kind"]);
    }
    // The top level is the photo's own search, as without the flag.
    let plain = ok(&["search", "--index", index(), "--json", &query("outfit.jpg")]);
    let plain = &json_lines(&plain)[0];
    assert_eq!(v["results"], plain["results"]);
    // Without --json, a block per garment.
    let text = ok(&["search", "--index", index(), "--all-garments", &query("outfit.jpg")]);
    assert!(text.contains(&format!("{} garments found", garments.len())), "{text}");
    assert!(text.contains("[1] ") && text.contains("[2] "), "{text}");
}

#[test]
fn a_snapshot_of_one_garment_is_one_garment_of_its_kind() {
    for (photo, kind) in [("hat.jpg", "hat"), ("shoes.jpg", "shoes")] {
        let v = look(photo);
        assert_eq!(kinds(&v), [kind], "{photo}: {v}");
    }
}

#[test]
fn a_crop_cannot_go_with_all_garments() {
    let out = lookalike(&[
        "search",
        "--index",
        index(),
        "--all-garments",
        "--crop",
        "0,0,100,100",
        &query("outfit.jpg"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("crop"));
}

#[test]
fn eval_looks_scores_boxes_and_photos_known_by_what_they_show() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("looks.csv");
    // The outfit's trousers tile (the trousers fill most of it) and a photo known only by
    // what it shows: the sample's trousers 1003 itself, its own item left out.
    let trousers = p(&sample().join("images/1003.jpg")).to_string();
    let text = format!(
        "file,kind,x,y,w,h,item,article_type\n\
         {},bottom,300,0,300,300,1003,Trousers\n\
         {trousers},bottom,,,,,1003,Trousers\n",
        query("outfit.jpg")
    );
    std::fs::write(&csv, text).unwrap();
    let out = ok(&["eval", "--index", index(), "--looks", p(&csv), "--json"]);
    let v = &json_lines(&out)[0];
    assert_eq!(v["mode"], "looks", "{v}");
    assert_eq!((v["photos"].as_u64(), v["boxed_garments"].as_u64()), (Some(2), Some(1)), "{v}");
    assert_eq!(v["unboxed_photos"], 1, "{v}");
    assert_eq!(v["garment_recall"], 1.0, "the trousers' box is found: {v}");
    assert!(v["garment_precision"].as_f64().unwrap() >= 0.6, "{v}");
    assert_eq!(v["found_by_a_garment"], 1.0, "{v}");
    assert_eq!(v["at_least_one_garment"], 1.0, "{v}");
    assert!(v["look_ms_p50"].as_f64().unwrap() > 0.0, "{v}");

    std::fs::write(&csv, "file,kind,x,y,w,h,item,article_type\na.jpg,scarf,1,2,3,4,,Scarves\n")
        .unwrap();
    let out = lookalike(&["eval", "--index", index(), "--looks", p(&csv)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("row 2") && err.contains("scarf"), "{err}");
    std::fs::write(&csv, "photo,label\na.jpg,x\n").unwrap();
    let err = lookalike(&["eval", "--index", index(), "--looks", p(&csv)]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("'file' and 'article_type'"));
}
