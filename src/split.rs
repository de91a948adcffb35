//! Fixed splits of the data, so that whatever is trained can leave out what is measured:
//! the catalogue's held-out items, and the outside (shopper) photos kept for testing.
//!
//! Both are a hash of a name (BLAKE3, first 8 bytes little-endian, modulo 100), so a split
//! never depends on the order, the size of the collection or the machine, and the
//! training code (`training/data.py`) computes the very same sets.

/// Share of the catalogue, in percent, held out from anything trained on it.
pub const HOLDOUT_PERCENT: u64 = 20;

/// Share of the outside photos, in percent, kept for testing (never trained on).
pub const QUERY_TEST_PERCENT: u64 = 30;

fn bucket(name: &str) -> u64 {
    let h = blake3::hash(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(first) % 100
}

/// Whether catalogue item `id` is in the held-out split.
pub fn in_holdout(id: &str) -> bool {
    bucket(id) < HOLDOUT_PERCENT
}

/// Whether an outside photo (by its file name, as a queries CSV names it) is in the test
/// part: of the 1,000 street photos, these 300 are only ever evaluated on.
pub fn query_in_test(file_name: &str) -> bool {
    bucket(file_name) < QUERY_TEST_PERCENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_fixed_shares_of_the_names() {
        let names: Vec<String> = (0..20_000).map(|i| format!("{i}.jpg")).collect();
        let test = names.iter().filter(|n| query_in_test(n)).count();
        assert!((5_600..6_400).contains(&test), "{test} of 20,000");
        let held = names.iter().filter(|n| in_holdout(n)).count();
        assert!((3_700..4_300).contains(&held), "{held} of 20,000");
        // The same names give the same answer in any order; the two splits are not one.
        assert_eq!(test, names.iter().rev().filter(|n| query_in_test(n)).count());
        assert!(names.iter().any(|n| query_in_test(n) != in_holdout(n)));
    }

    #[test]
    fn known_street_photos_fall_where_the_training_code_puts_them() {
        // As training/data.py's street_in_test (Python's blake3) puts them.
        assert!(query_in_test("efe05a65-d5c5-4c4a-84c2-9787737488e0.jpg"));
        assert!(query_in_test("c17a15e5-7074-4e0c-83d4-430ac8a9dbf7.jpg"));
        assert!(!query_in_test("14b030c6-7721-42c3-acdf-a4b2f9fad919.jpg"));
        assert!(!query_in_test("f207a364-bb40-42cd-a764-a2b9896705df.jpg"));
    }
}
