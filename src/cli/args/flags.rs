//! The flag groups several commands share (inference backend, search mode, colour,
//! ranking, network limits) and the parsers of their values.

use clap::Args;
use lookalike::embed::BackendKind;
use lookalike::index::SearchMode;
use lookalike::location::Location;
use lookalike::model::QueryPrecision;

#[derive(Args, Clone)]
pub struct BackendArg {
    /// Inference backend: auto (ONNX Runtime if found, else tract), ort, tract.
    #[arg(long, default_value = "auto", value_parser = parse_backend)]
    pub backend: BackendKind,
    /// What embeds query photos for an index of lookalike-fashion-4 or -3: its int8 twin (0.7x
    /// the model's time; street precision@5 0.010 lower for -4, 0.004 for -3) or the fp32
    /// model the catalogue was embedded with; auto: fp32 for -4, and for -3 int8 where the
    /// CPU has AVX-512 VNNI or AVX-VNNI.
    #[arg(long, value_name = "auto|fp32|int8", default_value = "auto", env = "LOOKALIKE_QUERY_PRECISION", value_parser = parse_query_precision)]
    pub query_precision: QueryPrecision,
}

impl BackendArg {
    /// The index at `index` opened on this backend, the model run `par` at once, query
    /// photos embedded as asked.
    pub fn open(
        &self,
        index: &Location,
        par: lookalike::embed::Parallelism,
    ) -> lookalike::error::Result<lookalike::engine::Engine> {
        self.open_held(index, par, lookalike::engine::Residency::Snapshot)
    }

    /// [`BackendArg::open`], the items held as `residency` says (`serve` and `search`
    /// hold none of a Milvus collection's).
    pub fn open_held(
        &self,
        index: &Location,
        par: lookalike::embed::Parallelism,
        residency: lookalike::engine::Residency,
    ) -> lookalike::error::Result<lookalike::engine::Engine> {
        let p = self.query_precision;
        lookalike::engine::Engine::open_held(index, self.backend, None, par, p, residency)
    }
}

pub fn parse_query_precision(s: &str) -> Result<QueryPrecision, String> {
    s.parse()
}

pub fn parse_backend(s: &str) -> Result<BackendKind, String> {
    s.parse()
}

#[derive(Args, Clone, Copy)]
pub struct ModeArg {
    /// Compare the query with every candidate (default below 200,000 candidates, or with a
    /// filter keeping under a tenth of the index).
    #[arg(long, conflicts_with = "ann")]
    pub exact: bool,
    /// Approximate: a Milvus collection's own search, or the partition cells nearest to
    /// the query (default from 200,000 candidates on).
    #[arg(long)]
    pub ann: bool,
}

impl ModeArg {
    pub fn mode(self) -> SearchMode {
        match (self.exact, self.ann) {
            (true, _) => SearchMode::Exact,
            (_, true) => SearchMode::Ann,
            _ => SearchMode::Auto,
        }
    }
}

#[derive(Args, Clone, Copy)]
pub struct ColourArg {
    /// How much colour counts against shape: 0 (shape only) to 4 (default: the index's
    /// weight, 0.3 for new indexes; shape only for snapshots).
    #[arg(long)]
    pub colour: Option<f32>,
}

#[derive(Args, Clone, Copy)]
pub struct ExpandArg {
    /// Query expansion: fold the best N results into the query and search again (0: off).
    #[arg(long, value_name = "N")]
    pub expand: Option<usize>,
}

#[derive(Args, Clone, Copy)]
pub struct TrainedArg {
    /// Re-order every query's results with the index's trained projection (`lookalike
    /// train`), snapshots included; without it, an index that has one uses it for all
    /// but snapshots.
    #[arg(long)]
    pub trained: bool,
    /// The trained projection's share of the score, 0..1 (default 0.4; 0: not used).
    /// A trained search weighs colour 1.0 unless --colour says.
    #[arg(long, value_name = "SHARE")]
    pub mix: Option<f32>,
}

impl TrainedArg {
    pub fn trained(self) -> Option<f32> {
        self.mix.or(self.trained.then_some(lookalike::projection::DEFAULT_MIX))
    }
}

/// How a search ranks, shared by `search` and `eval` so that both rank alike.
#[derive(Args, Clone, Copy)]
pub struct CategoryArg {
    /// Share of the score given to the predicted article type (and, scaled alike, colour):
    /// results of the category the photo looks like come first when the prediction is
    /// sure. 0: by similarity alone. Default: 0.3 when the model predicts categories
    /// (the fashion model); with other models a value asks for a vote of the nearest
    /// items' labels.
    #[arg(long, value_name = "SHARE")]
    pub category: Option<f32>,
    /// Search a snapshot by the garment the model finds in it (auto: snapshots without
    /// --crop, with a model that finds garments; on: every photo without --crop; off).
    #[arg(long, default_value = "auto", value_parser = parse_locate)]
    pub locate: Switch,
    /// Embed a photo together with its left-right mirror, averaged (auto: snapshots when
    /// that is the default, see BENCHMARKS.md; on: every photo; off: none).
    #[arg(long, default_value = "auto", value_parser = parse_flip)]
    pub flip: Switch,
    /// A large garment's view averaged with the whole photo's from the garment mask's
    /// own run (on: one model run fewer), or from a run of its own (off); auto: the
    /// measured default (BENCHMARKS.md, "One pass").
    #[arg(long, default_value = "auto", value_parser = parse_one_pass)]
    pub one_pass: Switch,
    /// With --all-garments (and eval --looks), each garment's results only among items
    /// of its kind (by the catalogue's subCategory, when the index has that column, and
    /// outerwear by its article types too);
    /// auto: the measured default (BENCHMARKS.md, "Every garment in a photo").
    #[arg(long, default_value = "auto", value_parser = parse_kind_filter)]
    pub kind_filter: Switch,
    /// With category ranking, a snapshot's last result is the most similar item the
    /// results before it do not show, whatever its kind (on); off: every result by the
    /// blended score.
    #[arg(long, default_value = "on", value_parser = parse_on_off, value_name = "on|off",
          action = clap::ArgAction::Set)]
    pub keep_nearest: bool,
}

pub fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("'{other}': use on or off")),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
/// auto, on or off: a choice whose default depends on the photo.
pub enum Switch {
    Auto,
    On,
    Off,
}

pub fn parse_locate(s: &str) -> Result<Switch, String> {
    match s {
        "auto" => Ok(Switch::Auto),
        "on" => Ok(Switch::On),
        "off" => Ok(Switch::Off),
        other => Err(format!("unknown locate mode '{other}': use auto, on or off")),
    }
}

pub fn parse_flip(s: &str) -> Result<Switch, String> {
    parse_locate(s).map_err(|_| format!("unknown flip mode '{s}': use auto, on or off"))
}

pub fn parse_kind_filter(s: &str) -> Result<Switch, String> {
    parse_locate(s).map_err(|_| format!("unknown kind filter '{s}': use auto, on or off"))
}

pub fn parse_one_pass(s: &str) -> Result<Switch, String> {
    parse_locate(s).map_err(|_| format!("unknown one-pass mode '{s}': use auto, on or off"))
}

impl Switch {
    pub fn flag(self) -> Option<bool> {
        match self {
            Switch::Auto => None,
            Switch::On => Some(true),
            Switch::Off => Some(false),
        }
    }
}

#[derive(Args, Clone, Copy)]
pub struct RankingArg {
    #[command(flatten)]
    pub expand: ExpandArg,
    #[command(flatten)]
    pub trained: TrainedArg,
    #[command(flatten)]
    pub mode: ModeArg,
    #[command(flatten)]
    pub colour: ColourArg,
    #[command(flatten)]
    pub category: CategoryArg,
}

impl RankingArg {
    /// A query of `k` results through `filter`, ranked as these flags say.
    pub fn query(self, k: usize, filter: lookalike::Filter) -> lookalike::Query {
        lookalike::Query {
            k,
            filter,
            mode: self.mode.mode(),
            colour: self.colour.colour,
            expand: self.expand.expand,
            trained: self.trained.trained(),
            category: self.category.category,
            locate: self.category.locate.flag(),
            flip: self.category.flip.flag(),
            one_pass: self.category.one_pass.flag(),
            kind_filter: self.category.kind_filter.flag(),
            keep_nearest: self.category.keep_nearest,
            ..lookalike::Query::default()
        }
    }
}

/// How `train` trains its network (see `lookalike::projection::train::TrainConfig`).
#[derive(Args, Clone, Copy)]
pub struct NetworkArg {
    /// Width of the hidden layer (0: one linear layer).
    #[arg(long, default_value_t = 512)]
    pub hidden: usize,
    /// Width of the projected vectors.
    #[arg(long, default_value_t = 256)]
    pub dim: usize,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub learning_rate: f32,
    /// Share of the embedding's components dropped at random in each training batch.
    #[arg(long, default_value_t = 0.0)]
    pub input_dropout: f32,
    #[arg(long, default_value_t = 0x5EED_7EA1)]
    pub seed: u64,
    /// Most items to train on; a larger index trains on a seeded sample.
    #[arg(long, default_value_t = lookalike::projection::train::MAX_TRAIN_ITEMS)]
    pub max_items: usize,
}

impl NetworkArg {
    pub fn config(self) -> lookalike::projection::train::TrainConfig {
        lookalike::projection::train::TrainConfig {
            hidden: self.hidden,
            dim: self.dim,
            epochs: self.epochs,
            batch: self.batch,
            learning_rate: self.learning_rate,
            input_dropout: self.input_dropout,
            seed: self.seed,
            max_items: self.max_items,
            ..Default::default()
        }
    }
}
