//! lookalike: visual search for fashion catalogues.
//!
//! Index a folder of product photos once ([`ingest::index_catalog`]), then find the
//! catalogue items most similar to any photo ([`engine::Engine`]). See ARCHITECTURE.md
//! for the codemap and the invariants between modules.

pub mod bench;
pub mod bucket;
pub mod catalog;
pub mod category;
pub mod colour;
pub mod embed;
pub mod engine;
pub mod error;
pub mod eval;
pub mod fetch;
pub mod garment;
pub mod index;
pub mod ingest;
pub mod kernel;
pub mod label;
pub mod location;
pub mod milvus;
pub mod model;
pub mod preprocess;
pub mod projection;
pub mod report;
pub mod server;
pub mod split;
pub mod store;

pub use engine::{Engine, Query};
pub use error::{Error, Result};
pub use index::{Filter, Hit};
