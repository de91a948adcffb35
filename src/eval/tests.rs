//! Unit tests of the measures, leave-one-out and photo scoring on hand-made data.

use super::*;
use crate::index::{Filter, Segment};
use crate::store::{Change, ItemRecord, MemoryStore, Store};

#[test]
fn the_holdout_split_is_a_fixed_fifth_by_id() {
    let ids: Vec<String> = (0..20_000).map(|i| format!("{}", 10_000 + i)).collect();
    let held = ids.iter().filter(|id| in_holdout(id)).count();
    assert!((3_700..4_300).contains(&held), "{held} of 20,000");
    // Fixed: the same ids, whatever else is in the catalogue or its order.
    let again = ids.iter().rev().filter(|id| in_holdout(id)).count();
    assert_eq!(held, again);
}

#[test]
fn precision_on_hand_made_rankings() {
    assert_eq!(precision_at_k(&[true, false, true, false, false], 5), 0.4);
    assert_eq!(precision_at_k(&[true, true], 5), 0.4, "missing results count as wrong");
    assert_eq!(precision_at_k(&[false; 5], 5), 0.0);
    assert_eq!(precision_at_k(&[true; 5], 3), 1.0);
}

#[test]
fn average_precision_on_hand_made_rankings() {
    // relevant at ranks 1 and 3, 2 relevant in all: (1/1 + 2/3) / 2
    let ap = average_precision_at_k(&[true, false, true, false, false], 5, 2);
    assert!((ap - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    // 10 relevant in the catalogue, k = 5: normalised by min(k, R) = 5
    let ap = average_precision_at_k(&[false, true, false, false, false], 5, 10);
    assert!((ap - 0.5 / 5.0).abs() < 1e-12);
    assert_eq!(average_precision_at_k(&[true; 5], 5, 5), 1.0);
    assert_eq!(average_precision_at_k(&[false; 5], 5, 0), 0.0);
}

fn tiny_index() -> Segment {
    // Two tight clusters; one item of cluster A is labelled B (a hard case).
    let items: [(&str, [f32; 2], &str, &str); 5] = [
        ("a1", [1.0, 0.0], "A", "red"),
        ("a2", [0.99, 0.14], "A", "blue"),
        ("a3", [0.98, 0.2], "B", "red"),
        ("b1", [0.0, 1.0], "B", "red"),
        ("b2", [0.14, 0.99], "B", "red"),
    ];
    let s = MemoryStore::new();
    let changes: Vec<Change> = items
        .iter()
        .map(|(id, v, t, c)| {
            let mut record = ItemRecord::default();
            record.metadata.insert("type".into(), t.to_string());
            record.metadata.insert("colour".into(), c.to_string());
            record.metadata.insert(COLOUR_COLUMN.into(), c.to_string());
            record
                .metadata
                .insert("master".into(), if id.starts_with('a') { "X" } else { "Y" }.into());
            Change::Put { id: id.to_string(), record, vector: v.to_vec() }
        })
        .collect();
    s.apply(None, &changes).unwrap();
    crate::index::VectorIndex::load(&s, 2).unwrap().compacted().as_ref().clone()
}

#[test]
fn leave_one_out_on_a_known_layout() {
    let idx = tiny_index();
    let cols = vec!["type".to_string(), "colour".to_string(), "master".to_string()];
    let labels = parse_labels(&["type".into(), "type+colour".into()], &cols).unwrap();
    let filter = Filter::default();
    let run = LeaveOneOut { group_by: Some("master"), ..LeaveOneOut::new(1, &labels, &filter) };
    let r = leave_one_out(&idx, &run).unwrap();
    // Nearest neighbours: a1->a2 (A ok), a2->a3 (A vs B wrong), a3->a2 (B vs A wrong),
    // b1->b2 (ok), b2->b1 (ok): 3 of 5.
    assert_eq!(r.queries, 5);
    assert!((r.precision - 0.6).abs() < 1e-12, "{r:?}");
    assert!((r.labels[0].groups["X"].precision - 1.0 / 3.0).abs() < 1e-12);
    assert!((r.labels[0].groups["Y"].precision - 1.0).abs() < 1e-12);
    // type+colour: a1->a2 (A red vs A blue: wrong), b1->b2 ok, b2->b1 ok,
    // a2 (A blue, no other) -> counted with AP 0, a3 -> a2 wrong: 2/5.
    assert!((r.labels[1].overall.precision - 0.4).abs() < 1e-12, "{:?}", r.labels[1]);
    // Per class of the first label, weakest first: A (a1 ok, a2 wrong), then B (a3 wrong,
    // b1 and b2 ok).
    let classes: Vec<(&str, usize)> =
        r.per_class.iter().map(|c| (c.class.as_str(), c.queries)).collect();
    assert_eq!(classes, [("A", 2), ("B", 3)]);
    assert!((r.per_class[0].precision - 0.5).abs() < 1e-12);
    assert!((r.per_class[0].none_correct - 0.5).abs() < 1e-12);
    assert!((r.per_class[1].precision - 2.0 / 3.0).abs() < 1e-12);
    assert!((r.per_class[1].none_correct - 1.0 / 3.0).abs() < 1e-12);
}

#[test]
fn leave_one_out_classes_are_article_types_when_there_are_some() {
    let idx = tiny_index();
    let cols = vec!["type".to_string(), "colour".to_string(), "master".to_string()];
    // Measured on colour, but grouped by the articleType column when items have one: the
    // tiny index has none, so the first label's value names the class.
    let labels = parse_labels(&["colour".into()], &cols).unwrap();
    let filter = Filter::default();
    let r = leave_one_out(&idx, &LeaveOneOut::new(1, &labels, &filter)).unwrap();
    let total: usize = r.per_class.iter().map(|c| c.queries).sum();
    assert_eq!(total, 5);
    let mut names: Vec<&str> = r.per_class.iter().map(|c| c.class.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["blue", "red"]);
}

#[test]
fn unknown_label_is_named() {
    let cols = vec!["type".to_string()];
    assert!(matches!(parse_labels(&["colour".into()], &cols), Err(Error::UnknownColumn { .. })));
}

#[test]
fn photo_queries_score_against_match_lists() {
    let idx = tiny_index();
    let q = |label: &str, m: &[&str]| PhotoQuery {
        file: PathBuf::from("q.jpg"),
        label: label.into(),
        matches: m.iter().map(|s| s.to_lowercase()).collect(),
        colours: Vec::new(),
        item: None,
    };
    let s =
        |rows: &[usize]| Ok(rows.iter().map(|&row| Scored { row, score: 1.0 }).collect::<Vec<_>>());
    let results = vec![
        (q("x", &["A"]), s(&[0, 1])),
        (q("y", &["B"]), s(&[0, 1])),
        (q("y", &["b"]), s(&[3, 2])),
    ];
    let r = score_photo_queries(&idx, "type", 2, results, 0);
    assert_eq!(r.queries, 3);
    assert!((r.precision - (1.0 + 0.0 + 1.0) / 3.0).abs() < 1e-12);
    assert!((r.none_correct - 1.0 / 3.0).abs() < 1e-12);
    assert!((r.by_label["y"].precision - 0.5).abs() < 1e-12);
    // Weakest first: y (one right, one with nothing right), then x.
    let y = &r.per_class[0];
    assert_eq!((y.class.as_str(), y.queries), ("y", 2));
    assert!((y.precision - 0.5).abs() < 1e-12 && (y.none_correct - 0.5).abs() < 1e-12);
    let x = &r.per_class[1];
    assert_eq!((x.class.as_str(), x.queries), ("x", 1));
    assert!((x.precision - 1.0).abs() < 1e-12 && x.none_correct == 0.0);
    assert_eq!((r.colour_precision, r.colour_queries), (None, None));
}

#[test]
fn photo_queries_naming_colours_are_scored_on_type_and_colour() {
    let idx = tiny_index();
    let q = |m: &str, colours: &[&str]| PhotoQuery {
        file: PathBuf::from("q.jpg"),
        label: "l".into(),
        matches: vec![m.to_lowercase()],
        colours: colours.iter().map(|s| s.to_lowercase()).collect(),
        item: None,
    };
    let s =
        |rows: &[usize]| Ok(rows.iter().map(|&row| Scored { row, score: 1.0 }).collect::<Vec<_>>());
    // a1 is A red, a2 A blue, a3 B red, b1 B red.
    let results = vec![
        (q("A", &["Red"]), s(&[0, 1])),
        (q("B", &["red", "blue"]), s(&[2, 1])),
        (q("A", &[]), s(&[3, 2])),
    ];
    let r = score_photo_queries(&idx, "type", 2, results, 0);
    assert!((r.precision - (1.0 + 0.5 + 0.0) / 3.0).abs() < 1e-12);
    // Only the two rows naming colours count: a1 right, a2 wrong colour; a3 right, a2
    // the wrong type.
    assert_eq!(r.colour_queries, Some(2));
    assert!((r.colour_precision.unwrap() - 0.5).abs() < 1e-12);
}
