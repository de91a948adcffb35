//! `lookalike bench`'s commands: what each measures and its flags.

use std::path::PathBuf;

use clap::Subcommand;
use lookalike::location::Location;

use super::{BackendArg, ModeArg, Switch, TrainedArg, parse_flip, parse_one_pass};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Each indexing stage alone (read, decode, resize+normalise, inference, store).
    Stages {
        catalog: PathBuf,
        /// Photos to use (the first N in path order).
        #[arg(long, default_value_t = 2000)]
        limit: usize,
        #[arg(long, default_value = "lite0")]
        model: String,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[command(flatten)]
        backend: BackendArg,
    },
    /// Exact search latency over the index's vectors, and over synthetic copies at scale.
    Search {
        #[arg(long, value_parser = Location::parse)]
        index: Location,
        /// Queries timed one by one.
        #[arg(long, default_value_t = 200)]
        queries: usize,
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// Also measure at these catalogue sizes (real vectors perturbed).
        #[arg(long = "scale")]
        scales: Vec<usize>,
        /// Queries scored together for the batched figure.
        #[arg(long, default_value_t = 256)]
        batch: usize,
    },
    /// Live writes: a batch of photos, then photos one write each, into a copy of an index.
    Add {
        #[arg(long, value_parser = Location::parse)]
        index: Location,
        /// Folder of photos to add (the first --count, in path order).
        photos: PathBuf,
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// How many of them are added one write each (the rest in one batch).
        #[arg(long, default_value_t = 200)]
        single: usize,
        #[command(flatten)]
        backend: BackendArg,
    },
    /// Approximate search (partition cells) against exact search at scale: build time,
    /// recall, latency, filtered queries.
    Ann {
        #[arg(long, value_parser = Location::parse)]
        index: Location,
        /// Catalogue size (real vectors perturbed).
        #[arg(long, default_value_t = 1_000_000)]
        scale: usize,
        #[arg(long, default_value_t = 200)]
        queries: usize,
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// Numbers of partition cells to probe, swept.
        #[arg(long, value_delimiter = ',', default_value = "8,16,32,64,128")]
        probes: Vec<usize>,
        /// Catalogue vectors the synthetic ones are made from (default: all). Fewer give
        /// a smaller catalogue the near-duplicate clusters of a bigger one.
        #[arg(long)]
        sources: Option<usize>,
        /// Scratch folder for the store (default: a temporary folder).
        #[arg(long)]
        scratch: Option<PathBuf>,
    },
    /// A new index (a folder or a Milvus collection) of --count items grown from a real
    /// one: its items, then copies drawn near their vectors with their metadata. No photo
    /// is embedded; for measuring a catalogue larger than the one at hand.
    Fill {
        /// The index the items are drawn from.
        #[arg(long, value_parser = Location::parse)]
        index: Location,
        /// The new index (must not hold one).
        #[arg(long, value_parser = Location::parse)]
        into: Location,
        /// Items in the new index, the real ones included.
        #[arg(long, default_value_t = 1_000_000)]
        count: usize,
        /// Relative distance of a copy from the item it is drawn from.
        #[arg(long, default_value_t = 0.3)]
        sigma: f32,
        /// Items per write.
        #[arg(long, default_value_t = 2_000)]
        batch: usize,
        /// The vector index of a new collection (as `index --milvus-index`).
        #[arg(long, value_name = "hnsw|ivf_flat|ivf_sq8")]
        milvus_index: Option<lookalike::milvus::VectorIndexKind>,
    },
    /// Photo in, results out, in process: decode + embed + search latency.
    Query {
        #[arg(long, value_parser = Location::parse)]
        index: Location,
        images: Vec<PathBuf>,
        /// Times each photo is searched.
        #[arg(long, default_value_t = 20)]
        repeat: usize,
        #[command(flatten)]
        mode: ModeArg,
        #[command(flatten)]
        trained: TrainedArg,
        /// Embed with the photo's mirror too (auto: the default for snapshots).
        #[arg(long, default_value = "auto", value_parser = parse_flip)]
        flip: Switch,
        /// The whole photo's view from the garment mask's run (auto: the default).
        #[arg(long, default_value = "auto", value_parser = parse_one_pass)]
        one_pass: Switch,
        #[command(flatten)]
        backend: BackendArg,
    },
}
