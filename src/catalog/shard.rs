//! A shard of a catalogue: the part of it one of N indexing processes embeds, so that N
//! machines can fill one index (a Milvus collection) together.
//!
//! An item belongs to shard `BLAKE3(id) mod N`: every process decides alone, from the id,
//! with nothing shared, and the shards are disjoint and together the whole catalogue.

use std::fmt;
use std::str::FromStr;

/// Most shards a catalogue is split into.
pub const MAX_SHARDS: u32 = 4096;

/// Shard `index` of `count` (written `I/N`, 0-based: `0/2` and `1/2` are the two halves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 || count > MAX_SHARDS {
            return Err(format!("the number of shards {count} is not in 1..={MAX_SHARDS}"));
        }
        if index >= count {
            return Err(format!(
                "shard {index} does not exist in {count} shards (they are numbered 0 to {})",
                count - 1
            ));
        }
        Ok(Self { index, count })
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether the item `id` is this shard's.
    pub fn holds(&self, id: &str) -> bool {
        shard_of(id, self.count) == self.index
    }
}

/// The shard of `count` that item `id` belongs to.
pub fn shard_of(id: &str, count: u32) -> u32 {
    let hash = blake3::hash(id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    (u64::from_le_bytes(first) % u64::from(count.max(1))) as u32
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a shard: write I/N, e.g. 0/4 for the first of four");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let i: u32 = i.trim().parse().map_err(|_| bad())?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        Self::new(i, n)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_ids_into_disjoint_parts_that_cover_them() {
        let ids: Vec<String> = (0..2000).map(|i| format!("{}", 10_000 + i)).collect();
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        let mut sizes = [0usize; 3];
        for id in &ids {
            let owners: Vec<usize> = (0..3).filter(|&s| shards[s].holds(id)).collect();
            assert_eq!(owners.len(), 1, "{id} is in shards {owners:?}");
            sizes[owners[0]] += 1;
        }
        // A hash spreads them evenly (each third within 10 %).
        assert!(sizes.iter().all(|&n| (600..=733).contains(&n)), "{sizes:?}");
        // One shard is the whole catalogue.
        assert!(ids.iter().all(|id| Shard::new(0, 1).unwrap().holds(id)));
    }

    #[test]
    fn shards_are_parsed_and_bad_ones_named() {
        assert_eq!("1/4".parse::<Shard>().unwrap(), Shard::new(1, 4).unwrap());
        assert_eq!(Shard::new(2, 8).unwrap().to_string(), "2/8");
        for (text, says) in [
            ("4/4", "does not exist in 4 shards"),
            ("0/0", "not in 1..=4096"),
            ("1", "write I/N"),
            ("a/2", "write I/N"),
            ("-1/2", "write I/N"),
            ("0/99999", "not in 1..=4096"),
        ] {
            let e = text.parse::<Shard>().unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
