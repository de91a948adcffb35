//! A Milvus collection as the place an index lives (`milvus://HOST:PORT/COLLECTION`):
//! the address, a small gRPC client with bounded timeouts, and [`MilvusStore`], the
//! [`crate::store::Store`] kept in two collections: `COLLECTION` (one row per item: id,
//! vector, record, facets, a field per CSV column) and `COLLECTION_lookalike` (the index's description, counters
//! and partition centroids), which searches inside Milvus too (HNSW, filters as
//! expressions built by [`quote`] alone).
//!
//! Milvus has no transactions across rows, so a batch is written in an order that keeps
//! every prefix of it harmless: validation first (nothing written when it fails), keys
//! reserved before items use them, items, then the version bump that tells other
//! processes to reload. A batch cut short leaves some of its items written, each complete
//! (id, vector and record in one row), never two rows for one id (the id is the primary
//! key), and a re-run of `index` repairs the rest from the photos' hashes.

// The client and the store need the `milvus` feature (on by default: tonic, prost and the
// generated code); the address, quoting and errors are always there, so that an address
// given to a build without it is still understood, and refused by name.
#[cfg(feature = "milvus")]
mod client;
// The generated gRPC code, its own crate (crates/milvus-proto).
#[cfg(feature = "milvus")]
use lookalike_milvus_proto as proto;
#[cfg(feature = "milvus")]
mod store;

#[cfg(feature = "milvus")]
pub use client::Client;
#[cfg(feature = "milvus")]
pub use store::MilvusStore;

/// Errors talking to Milvus.
#[derive(Debug, thiserror::Error)]
pub enum MilvusError {
    #[error("bad Milvus address {address:?}: {reason} (expected milvus://HOST:PORT/COLLECTION)")]
    BadAddress { address: String, reason: String },
    #[error("cannot reach Milvus at {address}: {message}")]
    Connect { address: String, message: String },
    #[error("Milvus refused {call} on {collection}: {reason} (code {code})")]
    Refused { call: &'static str, collection: String, code: i32, reason: String },
    #[error("Milvus did not answer {call} on {collection}: {message}")]
    Transport { call: &'static str, collection: String, message: String },
    #[error("Milvus answered {call} on {collection} with data lookalike cannot read: {message}")]
    Data { call: &'static str, collection: String, message: String },
    #[error(
        "{address}: this lookalike was built without Milvus support (rebuild it with the Cargo feature `milvus`, on by default)"
    )]
    NotBuilt { address: String },
}

/// Where a Milvus-held index is: a server and a collection name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MilvusAddress {
    pub host: String,
    pub port: u16,
    pub collection: String,
}

impl MilvusAddress {
    /// Whether `s` is meant as a Milvus address (it may still be a bad one).
    pub fn is_address(s: &str) -> bool {
        s.starts_with("milvus://")
    }

    pub fn parse(s: &str) -> Result<Self, MilvusError> {
        let bad =
            |reason: &str| MilvusError::BadAddress { address: s.into(), reason: reason.into() };
        let rest =
            s.strip_prefix("milvus://").ok_or_else(|| bad("it does not start with milvus://"))?;
        let (server, collection) =
            rest.split_once('/').ok_or_else(|| bad("no collection after the server"))?;
        let (host, port) = server.rsplit_once(':').ok_or_else(|| bad("no port after the host"))?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port: u16 =
            port.parse().map_err(|_| bad("the port is not a number from 1 to 65535"))?;
        if port == 0 {
            return Err(bad("the port is not a number from 1 to 65535"));
        }
        // Milvus's own rule for collection names; the meta collection's suffix must fit too.
        let mut chars = collection.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok
            || !collection.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || collection.len() > 200
        {
            return Err(bad(
                "a collection name is 1 to 200 letters, digits and underscores, not starting with a digit",
            ));
        }
        Ok(Self { host: host.into(), port, collection: collection.into() })
    }

    /// The server's gRPC endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }
}

impl std::fmt::Display for MilvusAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "milvus://{}:{}/{}", self.host, self.port, self.collection)
    }
}

/// The vector index a new collection's items get (`index --milvus-index`): HNSW by
/// default (BENCHMARKS.md, "Searching inside Milvus"); IVF_FLAT; IVF_SQ8 (vectors kept
/// as bytes: a quarter of the memory, for catalogues of 100M items).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VectorIndexKind {
    #[default]
    Hnsw,
    IvfFlat,
    IvfSq8,
}

impl VectorIndexKind {
    /// Milvus's name for it.
    pub fn milvus_name(self) -> &'static str {
        match self {
            Self::Hnsw => "HNSW",
            Self::IvfFlat => "IVF_FLAT",
            Self::IvfSq8 => "IVF_SQ8",
        }
    }

    /// The kind of Milvus's name, if lookalike makes it.
    pub fn of_milvus_name(name: &str) -> Option<Self> {
        [Self::Hnsw, Self::IvfFlat, Self::IvfSq8].into_iter().find(|k| k.milvus_name() == name)
    }
}

impl std::str::FromStr for VectorIndexKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "hnsw" => Ok(Self::Hnsw),
            "ivf_flat" => Ok(Self::IvfFlat),
            "ivf_sq8" => Ok(Self::IvfSq8),
            other => Err(format!("unknown Milvus index '{other}': use hnsw, ivf_flat or ivf_sq8")),
        }
    }
}

impl std::fmt::Display for VectorIndexKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.milvus_name().to_ascii_lowercase())
    }
}

/// A string literal of Milvus's expression language holding `s` exactly: user text (ids)
/// only ever reaches an expression through this.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_kinds_parse_and_name_themselves() {
        for (text, kind, name) in [
            ("hnsw", VectorIndexKind::Hnsw, "HNSW"),
            ("ivf_flat", VectorIndexKind::IvfFlat, "IVF_FLAT"),
            ("IVF_SQ8", VectorIndexKind::IvfSq8, "IVF_SQ8"),
        ] {
            let k: VectorIndexKind = text.parse().unwrap();
            assert_eq!((k, k.milvus_name()), (kind, name));
            assert_eq!(VectorIndexKind::of_milvus_name(name), Some(k));
            assert_eq!(k.to_string().parse::<VectorIndexKind>(), Ok(k));
        }
        assert_eq!(VectorIndexKind::default(), VectorIndexKind::Hnsw);
        assert!(
            "annoy".parse::<VectorIndexKind>().unwrap_err().contains("hnsw, ivf_flat or ivf_sq8")
        );
        assert_eq!(VectorIndexKind::of_milvus_name("FLAT"), None);
    }

    #[test]
    fn addresses_parse_and_bad_ones_say_why() {
        let a = MilvusAddress::parse("milvus://127.0.0.1:19530/shop_photos").unwrap();
        assert_eq!(
            (a.host.as_str(), a.port, a.collection.as_str()),
            ("127.0.0.1", 19530, "shop_photos")
        );
        assert_eq!(a.to_string(), "milvus://127.0.0.1:19530/shop_photos");
        assert_eq!(a.endpoint(), "http://127.0.0.1:19530");
        for (bad, why) in [
            ("milvus://host/coll", "no port"),
            ("milvus://host:x/coll", "port"),
            ("milvus://host:0/coll", "port"),
            ("milvus://host:19530", "no collection"),
            ("milvus://host:19530/", "collection name"),
            ("milvus://host:19530/9lives", "collection name"),
            ("milvus://host:19530/a-b", "collection name"),
            ("milvus://:19530/a", "no host"),
        ] {
            let e = MilvusAddress::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
        assert!(MilvusAddress::is_address("milvus://x") && !MilvusAddress::is_address("/tmp/idx"));
    }

    #[test]
    fn quoting_keeps_user_text_inside_the_literal() {
        assert_eq!(quote("plain-id_1"), "\"plain-id_1\"");
        assert_eq!(quote("a\"] or id != \"x"), "\"a\\\"] or id != \\\"x\"");
        assert_eq!(quote("back\\slash\nnew"), "\"back\\\\slash\\nnew\"");
        assert_eq!(quote("\u{1}"), "\"\\u0001\"");
    }
}

/// The Milvus server the unit tests share (the integration tests' own, one file for both).
#[cfg(all(test, feature = "milvus"))]
#[path = "../../tests/common/milvus_server.rs"]
pub(crate) mod test_server;
