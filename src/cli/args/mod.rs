//! The command line's grammar: every command, its flags and their help text (clap
//! derive). The flag groups several commands share are in [`flags`], `bench`'s commands
//! in [`bench`].

mod bench;
mod flags;

pub use bench::BenchCommand;
pub use flags::*;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use lookalike::location::Location;
use lookalike::preprocess::{Crop, QueryResize};

#[derive(Parser)]
#[command(name = "lookalike", version, about = "Visual search for fashion catalogues")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Index (or refresh) a catalogue of product photos: a folder, or s3://BUCKET/PREFIX.
    Index(IndexArgs),
    /// Find the catalogue items most similar to photos (or to an indexed item).
    Search(SearchArgs),
    /// Add photos to an index (or replace items with the same ids), without re-indexing.
    Add(AddArgs),
    /// Remove items from an index by id.
    Remove(RemoveArgs),
    /// Train the index's partition (its approximate index) anew, e.g. after it has grown
    /// through `add`; `index` does it by itself once twice the cells are wanted.
    Repartition(RepartitionArgs),
    /// Measure retrieval quality: leave-one-out over the catalogue, or outside photos.
    Eval(EvalArgs),
    /// Learn a projection of the index's embeddings from its labels (e.g. articleType),
    /// stored in the index folder; searches then re-order their best results by it (all
    /// but snapshots, unless --trained or --mix say otherwise). Seeded: the same index and
    /// options give the same projection.
    Train(TrainArgs),
    /// Serve the web page and the JSON API.
    Serve(ServeArgs),
    /// Measure speed and memory (figures as JSON lines).
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Describe an index: model, item count, dimension, columns.
    Info(InfoArgs),
}

#[derive(Args)]
pub struct IndexArgs {
    /// Folder of photos, searched recursively; a photo's id is its file stem. Or photos in
    /// object storage: s3://BUCKET/PREFIX (any S3-compatible store; endpoint and keys from
    /// AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
    pub catalog: PathBuf,
    /// Index folder to create or update.
    #[arg(long, value_parser = Location::parse)]
    pub index: Location,
    /// CSV with an `id` column (default: styles.csv in the catalogue folder or under the
    /// bucket prefix, if any).
    #[arg(long)]
    pub metadata: Option<PathBuf>,
    /// Model for a new index: fashion (default: EfficientNet-Lite0 fine-tuned on
    /// fashion, 256-d, predicts article type and colour, finds garments in snapshots),
    /// fashion-2 and fashion-1 (its earlier versions), lite0 (ImageNet), lite2,
    /// lite0-int8 (faster, slightly less precise), or the path of a model manifest
    /// (.toml). An existing index keeps its model.
    #[arg(long)]
    pub model: Option<String>,
    /// Weight of the colour descriptor appended to each embedding, for a new index
    /// (default 0.3; 0: shape only). Queries may ask for another with --colour.
    #[arg(long)]
    pub colour_weight: Option<f32>,
    /// Train the partition (the approximate index) anew even if the current one still
    /// fits the index's size (e.g. after many items were added with `add`).
    #[arg(long)]
    pub repartition: bool,
    /// Photos per inference batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Embed only shard I of N (0-based: items whose BLAKE3(id) mod N is I), so that N
    /// processes on N machines fill one index together, each run with its own I; re-runs
    /// are incremental per shard. A sharded run never trains the partition: run
    /// `lookalike repartition` once every shard is done.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<lookalike::catalog::Shard>,
    /// The vector index of a new Milvus collection (--index milvus://...): hnsw (the
    /// default), ivf_flat, or ivf_sq8 (vectors as bytes: a quarter of Milvus's memory,
    /// for the largest catalogues). Refused for a folder, and for a collection indexed
    /// with another kind.
    #[arg(long, value_name = "hnsw|ivf_flat|ivf_sq8")]
    pub milvus_index: Option<lookalike::milvus::VectorIndexKind>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub backend: BackendArg,
}

#[derive(Args)]
pub struct SearchArgs {
    #[arg(long, value_parser = Location::parse)]
    pub index: Location,
    /// Query photos: files, or http(s) URLs (fetched with a size, time and redirect
    /// limit; loopback, private and link-local addresses refused unless --fetch-allow).
    pub images: Vec<PathBuf>,
    /// Number of results.
    #[arg(short, long, default_value_t = 5)]
    pub k: usize,
    /// Keep only items with column=value (repeat; same column = any of the values).
    #[arg(long = "filter", value_name = "COLUMN=VALUE")]
    pub filters: Vec<String>,
    /// Search only this region of each photo: x,y,w,h in pixels.
    #[arg(long)]
    pub crop: Option<Crop>,
    /// Search from an indexed item instead of a photo.
    #[arg(long, value_name = "ID")]
    pub similar_to: Option<String>,
    /// More like this: an item id, a photo or a URL (repeat). With --like or --unlike the
    /// photos given (and --similar-to's item) are liked too, and one recommendation is
    /// made from them all.
    #[arg(long, value_name = "ID|PHOTO|URL")]
    pub like: Vec<String>,
    /// Less like this: an item id, a photo or a URL (repeat).
    #[arg(long, value_name = "ID|PHOTO|URL")]
    pub unlike: Vec<String>,
    /// Networks photo URLs may point into although loopback, private or link-local
    /// (repeat or comma-separate, e.g. 10.0.0.0/8).
    #[arg(long = "fetch-allow", value_name = "CIDR", env = "LOOKALIKE_FETCH_ALLOW", value_delimiter = ',', value_parser = parse_allow)]
    pub fetch_allow: Vec<ipnet::IpNet>,
    /// How query photos are squared: auto (pad studio shots, crop snapshots), pad, crop.
    #[arg(long, default_value = "auto")]
    pub query_resize: QueryResize,
    /// One JSON object per query, one per line.
    #[arg(long)]
    pub json: bool,
    /// Leave out results scoring below this (-1..1).
    #[arg(long)]
    pub min_score: Option<f32>,
    /// Leave out results nearly identical to a better one: cosine at least this (0..1,
    /// e.g. 0.95).
    #[arg(long)]
    pub collapse: Option<f32>,
    /// Shop the look: find every garment in each photo (top, outerwear, bottom, dress,
    /// shoes, bag, hat) and search each one; a block per garment (with --json, one line
    /// per photo holding "garments").
    #[arg(long)]
    pub all_garments: bool,
    #[command(flatten)]
    pub ranking: RankingArg,
    #[command(flatten)]
    pub backend: BackendArg,
}

#[derive(Args)]
pub struct AddArgs {
    #[arg(long, value_parser = Location::parse)]
    pub index: Location,
    /// Photos to add; an item's id is its file stem (or --id).
    #[arg(required = true)]
    pub photos: Vec<PathBuf>,
    /// Id of the item (one photo only).
    #[arg(long)]
    pub id: Option<String>,
    /// CSV with an `id` column giving the new items' metadata.
    #[arg(long)]
    pub metadata: Option<PathBuf>,
    /// Metadata for every photo given: column=value (repeat).
    #[arg(long = "set", value_name = "COLUMN=VALUE")]
    pub set: Vec<String>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub backend: BackendArg,
}

#[derive(Args)]
pub struct RemoveArgs {
    #[arg(long, value_parser = Location::parse)]
    pub index: Location,
    #[arg(required = true)]
    pub ids: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RepartitionArgs {
    #[arg(long, value_parser = Location::parse)]
    pub index: Location,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct EvalArgs {
    #[arg(long, value_parser = Location::parse)]
    pub index: Location,
    /// Every catalogue item queries the rest (the default without --queries).
    #[arg(long)]
    pub leave_one_out: bool,
    /// Relevance label: a column, or columns joined by '+' (repeat for several).
    /// Default: articleType, subCategory, articleType+baseColour (those present).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Column whose values break the figures down (default: masterCategory if present).
    #[arg(long)]
    pub group_by: Option<String>,
    /// CSV of outside photos: file,label,...,match_article_types.
    #[arg(long)]
    pub queries: Option<PathBuf>,
    /// Folder of the photos named in --queries (default: the CSV's folder/images).
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Shop the look: a CSV of photos and their garments (file,kind,x,y,w,h,item,
    /// article_type; bench/looks.py writes one): garment recall, per-garment
    /// precision@k, time per photo.
    #[arg(long)]
    pub looks: Option<PathBuf>,
    /// Column that --queries' match lists name.
    #[arg(long, default_value = "articleType")]
    pub match_column: String,
    #[arg(short, long, default_value_t = 5)]
    pub k: usize,
    /// Only evaluate (and search among) items with column=value.
    #[arg(long = "filter", value_name = "COLUMN=VALUE")]
    pub filters: Vec<String>,
    /// How outside photos are squared: auto, pad, crop.
    #[arg(long, default_value = "auto")]
    pub query_resize: QueryResize,
    /// One JSON object (per mode) instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Leave-one-out within the held-out split only (a fixed 20% of the items by a hash
    /// of their id, never used for training): queries and ranked items both from it.
    #[arg(long, conflicts_with_all = ["ann", "expand"])]
    pub holdout: bool,
    /// Write an HTML page of sample queries beside their top-k.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Queries shown in the HTML report.
    #[arg(long, default_value_t = 60)]
    pub report_samples: usize,
    #[command(flatten)]
    pub ranking: RankingArg,
    #[command(flatten)]
    pub backend: BackendArg,
}

#[derive(Args)]
pub struct TrainArgs {
    #[arg(long, value_parser = Location::parse)]
    pub index: Location,
    /// The label to learn: a column, or columns joined by '+'.
    #[arg(long, default_value = "articleType")]
    pub label: String,
    #[command(flatten)]
    pub network: NetworkArg,
    /// Train on the held-out split too (then `eval --holdout --trained` is refused:
    /// it would measure items the projection has seen).
    #[arg(long)]
    pub include_holdout: bool,
    /// Print the report as JSON (and no per-epoch lines).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ServeArgs {
    #[arg(long, value_parser = Location::parse)]
    pub index: Location,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// Catalogue to serve photos from, a folder or s3://BUCKET/PREFIX (default: the one the
    /// index was built from).
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// Largest accepted upload, in MB.
    #[arg(long, default_value_t = 20)]
    pub max_upload_mb: usize,
    /// Threads every search, recommendation, embedding and write runs on (0: one per
    /// core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub workers: usize,
    /// Model runs that may go on at once (0: one per worker; 1 is the one shared run of
    /// earlier versions).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub inference_sessions: usize,
    /// Threads each model run uses (0: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub inference_threads: usize,
    /// Searches waiting for a thread; one more is answered 503 with Retry-After at once.
    #[arg(long, value_name = "N", default_value_t = 64, alias = "max-inflight")]
    pub queue: usize,
    /// Seconds a search may wait in the queue: one that the searches already waiting
    /// would keep longer gets 503 at once, and one that waited longer all the same gets
    /// 503 when its turn comes.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.5, value_parser = parse_limit)]
    pub queue_wait: f64,
    /// Seconds a connection has to send a request's headers, and may sit idle between
    /// requests, before it is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_limit)]
    pub header_timeout: f64,
    /// Seconds an upload may send no byte before it gets 408 and its connection is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_limit)]
    pub idle_timeout: f64,
    /// Seconds an upload may take at any pace before --min-upload-rate applies.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_limit)]
    pub body_grace: f64,
    /// After --body-grace, the bytes of an upload received so far must keep up with this
    /// many KB/s, or it gets 408 (0: no minimum).
    #[arg(long, value_name = "KB_PER_S", default_value_t = 32)]
    pub min_upload_rate: u64,
    /// Connections open at once for any request.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_connections: usize,
    /// Connections beyond --max-connections that answer only /healthz and /metrics (any
    /// other request gets 503); past these, connections are closed as they arrive.
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub reserved_connections: usize,
    /// Connections one client address may hold open; more are closed as they arrive.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_connections_per_address: usize,
    /// Connections the system may hold made but not yet taken in (the listen backlog,
    /// at most the kernel's somaxconn).
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub listen_backlog: u32,
    /// MB that upload bodies (counted three times: the body, the form parser's buffer, a
    /// field's copy), photos fetched by URL (twice) and decodes may hold together; a
    /// request past it gets 503.
    #[arg(long, value_name = "MB", default_value_t = 384)]
    pub memory_budget_mb: u64,
    /// Photos fetched by URL at once, over all requests (one more waits up to
    /// --queue-wait, then gets 503).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub max_fetches: usize,
    /// How much lower the search threads' scheduling priority is than the threads that
    /// answer connections (nice value added, 0 to 19; 0: the same): a saturated server
    /// still answers /healthz at once, and searches give way to other processes too.
    #[arg(long, value_name = "N", default_value_t = lookalike::server::SEARCH_NICENESS,
          value_parser = clap::value_parser!(i32).range(0..=19))]
    pub search_niceness: i32,
    /// Bearer token that enables the write endpoints (POST /api/items,
    /// DELETE /api/items/{id}); without it they are disabled.
    #[arg(long, env = "LOOKALIKE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Networks query photos may be fetched from by URL although loopback, private or
    /// link-local (e.g. 10.0.0.0/8 for an intranet image server; repeat or comma-separate).
    #[arg(long = "fetch-allow", value_name = "CIDR", env = "LOOKALIKE_FETCH_ALLOW", value_delimiter = ',', value_parser = parse_allow)]
    pub fetch_allow: Vec<ipnet::IpNet>,
    /// How often, in seconds, to look for writes made to the index by other processes
    /// (other servers on the same index folder, `lookalike add`/`remove`/`index`) and load
    /// them; 0: never.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = parse_interval)]
    pub follow_interval: f64,
    #[command(flatten)]
    pub backend: BackendArg,
}

fn parse_interval(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.0..=3600.0).contains(&s) => Ok(s),
        _ => Err(format!("'{text}' is not a number of seconds in 0..=3600")),
    }
}

fn parse_limit(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 3600.0 => Ok(s),
        _ => Err(format!("'{text}' is not a number of seconds in (0, 3600]")),
    }
}

fn parse_allow(text: &str) -> Result<ipnet::IpNet, String> {
    lookalike::fetch::parse_allow(text)
}

#[derive(Args)]
pub struct InfoArgs {
    #[arg(long, value_parser = Location::parse)]
    pub index: Location,
    #[arg(long)]
    pub json: bool,
}
