//! Which image model turns a photo into a vector, and how its input must be prepared.
//!
//! A model is an ONNX file plus a [`ModelSpec`]: input size and layout, normalisation,
//! the output to read and its dimension, and what else it can tell (class heads, a
//! garment mask). The built-in models have their spec here: `fashion` (the default,
//! EfficientNet-Lite0 fine-tuned on fashion by `training/`, run r3; `fashion-2` and
//! `fashion-1` its earlier versions, kept for the indexes made with them), and the ImageNet
//! EfficientNet-Lite0 and Lite2 converted by `tools/convert_efficientnet_lite.py`. Any
//! other ONNX image model is described by a small TOML manifest beside it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors while resolving or reading a model description.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "unknown model '{name}': use fashion, fashion-int8, fashion-2, fashion-1, lite0, lite2, lite0-int8 or the path of a manifest (.toml)"
    )]
    Unknown { name: String },
    #[error(
        "built-in model file {file} not found (looked in {searched}); set LOOKALIKE_MODELS to the folder holding it"
    )]
    BuiltinMissing { file: String, searched: String },
    #[error("cannot read model manifest {}", .path.display())]
    ManifestRead { path: PathBuf, source: std::io::Error },
    #[error("invalid model manifest {path}: {message}")]
    ManifestInvalid { path: PathBuf, message: String },
}

/// Tensor memory layout the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Nchw,
    Nhwc,
}

/// How a non-square photo is made square before resizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    /// Fit the whole photo, fill the rest with white (studio background).
    #[default]
    Pad,
    /// Resize the shorter side, cut the centre square.
    Crop,
}

/// Everything needed to run a model on a photo, except the model bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub name: String,
    /// ONNX file, relative to the manifest (or the index folder once stored there).
    pub file: String,
    pub input: String,
    pub output: String,
    #[serde(default)]
    pub layout: Layout,
    pub size: u32,
    #[serde(default)]
    pub resize: ResizeMode,
    /// Per-channel mean and std in 0..1 pixel scale: `(x/255 - mean) / std`.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub dim: usize,
    /// Input size for snapshot queries (busy backgrounds, squared by cropping), when the
    /// model was trained to see them larger than catalogue photos; `None`: `size`.
    /// Needs a model whose input side is not fixed in the graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_size: Option<u32>,
    /// JSON file of the model's class heads (classes and proxies per metadata column, see
    /// [`crate::category`]), relative to the manifest (or the index folder once stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<String>,
    /// Output holding the garment probability per cell, `[batch, 1, h, w]` (see
    /// [`crate::garment`]), when the model has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    /// A photo query whose best result scores below this (at default settings) has no
    /// close match in the catalogue: measured on street photos (BENCHMARKS.md, "No close
    /// match"). `None`: not calibrated, never said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_match: Option<f32>,
}

/// The model new indexes get when none is asked for.
pub const DEFAULT_MODEL: &str = "fashion";

/// Built-in models: (short name, spec).
fn builtin(name: &str) -> Option<ModelSpec> {
    // EfficientNet-Lite wants (x - 127) / 128 on 0..255 pixels.
    let mean = [127.0 / 255.0; 3];
    let std = [128.0 / 255.0; 3];
    let fashion = match name {
        "fashion" | "fashion-4" | FASHION => Some((FASHION, FASHION_4_CLOSE_MATCH)),
        // r3, the default before r4: kept, as the earlier ones below, so the collections
        // and manifests naming it still find the file whose hash they recorded.
        "fashion-3" | FASHION_3 => Some((FASHION_3, FASHION_3_CLOSE_MATCH)),
        // r2 and r1, the earlier defaults: kept so the collections and manifests naming
        // them still find the file whose hash they recorded.
        "fashion-2" | FASHION_2 => Some((FASHION_2, FASHION_2_CLOSE_MATCH)),
        "fashion-1" | FASHION_1 => Some((FASHION_1, FASHION_1_CLOSE_MATCH.1)),
        // r4 and r3 quantised to int8 (tools/quantize_fashion.py): 0.7x the time per
        // photo, a little less precision (BENCHMARKS.md); as index models, an option.
        "fashion-int8" | "fashion-4-int8" | FASHION_INT8 => {
            Some((FASHION_INT8, FASHION_INT8_CLOSE_MATCH))
        }
        "fashion-3-int8" | FASHION_3_INT8 => Some((FASHION_3_INT8, FASHION_3_INT8_CLOSE_MATCH)),
        _ => None,
    };
    if let Some((full, floor)) = fashion {
        // An int8 variant shares its model's class heads (the same proxies: its
        // embeddings are the model's, within quantisation's error).
        let heads = TWINS.iter().find(|(_, t)| t.name == full).map_or(full, |(model, _)| model);
        // Catalogue photos are 60x80 to a few hundred pixels: 128 px holds what they have,
        // and costs a third of 224. Snapshots keep more detail at 160 (trained at both).
        return Some(ModelSpec {
            name: full.into(),
            file: format!("{full}.onnx"),
            input: "input".into(),
            output: "embedding".into(),
            layout: Layout::Nchw,
            size: 128,
            resize: ResizeMode::Pad,
            mean,
            std,
            dim: 256,
            query_size: Some(160),
            heads: Some(format!("{heads}.heads.json")),
            mask: Some("mask".into()),
            // Calibrated on half of the 300 test street photos (bench/close_match.py);
            // a retrained model must be calibrated anew (the floor follows its scores).
            close_match: Some(floor),
        });
    }
    let (full, size) = match name {
        "lite0" | "efficientnet-lite0" => ("efficientnet-lite0", 224),
        "lite2" | "efficientnet-lite2" => ("efficientnet-lite2", 260),
        // Lite0 quantised to int8 (tools/quantize_lite0.py): ~1.5x faster indexing on
        // ONNX Runtime, about 1 point of precision@5 less (BENCHMARKS.md).
        "lite0-int8" | "efficientnet-lite0-int8" => ("efficientnet-lite0-int8", 224),
        _ => return None,
    };
    Some(ModelSpec {
        name: full.to_string(),
        file: format!("{full}.onnx"),
        input: "input".into(),
        output: "embedding".into(),
        layout: Layout::Nchw,
        size,
        resize: ResizeMode::Pad,
        mean,
        std,
        dim: 1280,
        query_size: None,
        heads: None,
        mask: None,
        close_match: None,
    })
}

/// The score below which a photo query's best result is no close match: the spec's own,
/// or for an index made before the floor was recorded, the one measured for its model
/// file (by the file's BLAKE3).
pub fn close_match_floor(spec: &ModelSpec, model_hash: &str) -> Option<f32> {
    spec.close_match
        .or_else(|| (model_hash == FASHION_1_CLOSE_MATCH.0).then_some(FASHION_1_CLOSE_MATCH.1))
}

/// The first fashion model's file (BLAKE3), whose early indexes did not record a floor,
/// and its floor.
const FASHION_1_CLOSE_MATCH: (&str, f32) =
    ("3aeab0fb2a60f50b6db4602e36c99b01dfdd13d629af2fded4d3690fad2fa904", 0.665);

/// The default fashion model's floor (its indexes all record it).
const FASHION_4_CLOSE_MATCH: f32 = 0.725;

/// The third fashion model's floor (its indexes all record it).
const FASHION_3_CLOSE_MATCH: f32 = 0.71;

/// The second fashion model's floor (its indexes all record it).
const FASHION_2_CLOSE_MATCH: f32 = 0.695;

/// The int8 variant's floor, as an index's own model: the floor of its queries against r4's
/// fp32 catalogue (bench/close_match.py `--query-precision int8`); an index embedded by
/// it whole was not calibrated apart.
const FASHION_INT8_CLOSE_MATCH: f32 = 0.73;

/// r3's int8 variant's floor (calibrated as r3's: bench/close_match.py on its own index).
const FASHION_3_INT8_CLOSE_MATCH: f32 = 0.705;

/// Full name of the default fashion model quantised to int8.
pub const FASHION_INT8: &str = "lookalike-fashion-4-int8";

/// Full name of the third fashion model quantised to int8.
pub const FASHION_3_INT8: &str = "lookalike-fashion-3-int8";

/// Full name of the default fashion model (training run r4).
pub const FASHION: &str = "lookalike-fashion-4";

/// Full name of the third fashion model (training run r3), the default before r4.
pub const FASHION_3: &str = "lookalike-fashion-3";

/// Full name of the second fashion model (training run r2), the default before r3.
pub const FASHION_2: &str = "lookalike-fashion-2";

/// Full name of the first fashion model (training run r1), the default before r2.
pub const FASHION_1: &str = "lookalike-fashion";

/// Which model embeds query photos, for an index whose model has an int8 twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryPrecision {
    /// The twin where the processor runs int8 fast (x86-64 with AVX-512 VNNI or AVX-VNNI)
    /// and ONNX Runtime runs the model; the index's own model elsewhere.
    #[default]
    Auto,
    /// The index's own model, as it embedded the catalogue.
    Fp32,
    /// The twin, wherever it can run.
    Int8,
}

impl std::str::FromStr for QueryPrecision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "fp32" => Ok(Self::Fp32),
            "int8" => Ok(Self::Int8),
            other => Err(format!("unknown query precision '{other}' (auto, fp32, int8)")),
        }
    }
}

/// The built-in int8 twin of a built-in model (by its full name), whose embeddings stand
/// for the model's own: queries it embeds are searched among the catalogue's fp32
/// vectors at 0.7x the model's time (BENCHMARKS.md, "Queries in int8").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Twin {
    pub name: &'static str,
    /// The floor of such queries (bench/close_match.py with `--query-precision int8`).
    pub close_match: f32,
    /// Whether `--query-precision auto` picks it where int8 runs fast: only where it
    /// costs no measurable precision. r3's twin lost 0.004 of street precision@5; r4's
    /// loses 0.010 and takes shirts under 0.80, so r4's queries stay fp32 unless asked.
    pub auto: bool,
}

/// Each built-in model with an int8 twin, and the twin: the one table both
/// [`query_twin`] and the twins' specs (which read their model's heads) look in.
const TWINS: [(&str, Twin); 2] = [
    (
        FASHION,
        Twin {
            name: FASHION_INT8,
            // 0.73, where fp32 queries give 0.725.
            close_match: 0.73,
            auto: false,
        },
    ),
    (
        FASHION_3,
        Twin {
            name: FASHION_3_INT8,
            // 0.70, where fp32 queries give 0.71.
            close_match: 0.70,
            auto: true,
        },
    ),
];

/// The int8 twin of the built-in model `name` (its full name), if it has one.
pub fn query_twin(name: &str) -> Option<Twin> {
    TWINS.iter().find(|(model, _)| *model == name).map(|(_, twin)| *twin)
}

/// Whether this processor runs int8 models fast: x86-64 with AVX-512 VNNI or AVX-VNNI
/// (int8 dot products in one instruction). Without them ONNX Runtime's int8 kernels
/// gain little over fp32, and the twin would cost precision for nothing.
pub fn int8_is_fast() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni")
            || std::arch::is_x86_feature_detected!("avxvnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Folders searched for the built-in ONNX files, in order.
pub fn builtin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("LOOKALIKE_MODELS") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(parent) = exe.parent()
    {
        dirs.push(parent.join("models"));
    }
    // A build from the repository finds the models it was built beside.
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
    dirs
}

/// A model spec together with the folder its `file` is relative to.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    pub spec: ModelSpec,
    pub path: PathBuf,
}

impl ModelSpec {
    /// Check the values a manifest could get wrong.
    pub fn validate(&self, origin: &Path) -> Result<(), ModelError> {
        let bad =
            |message: String| ModelError::ManifestInvalid { path: origin.to_path_buf(), message };
        if self.size < 8 || self.size > 4096 {
            return Err(bad(format!("size {} out of range 8..=4096", self.size)));
        }
        if self.dim == 0 || self.dim > 65536 {
            return Err(bad(format!("dim {} out of range 1..=65536", self.dim)));
        }
        if self.std.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(bad("std values must be positive".into()));
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err(bad("mean values must be finite".into()));
        }
        if self.file.is_empty() || self.input.is_empty() || self.output.is_empty() {
            return Err(bad("file, input and output must not be empty".into()));
        }
        if let Some(q) = self.query_size
            && !(8..=4096).contains(&q)
        {
            return Err(bad(format!("query_size {q} out of range 8..=4096")));
        }
        if self.heads.as_deref().is_some_and(str::is_empty)
            || self.mask.as_deref().is_some_and(str::is_empty)
        {
            return Err(bad("heads and mask must not be empty when given".into()));
        }
        Ok(())
    }

    /// The input side for a query photo: snapshots at `query_size` when the model has one.
    pub fn input_size(&self, snapshot: bool) -> u32 {
        if snapshot { self.query_size.unwrap_or(self.size) } else { self.size }
    }

    /// Every input side the model is run at.
    pub fn input_sizes(&self) -> Vec<u32> {
        let mut sizes = vec![self.size];
        sizes.extend(self.query_size.filter(|&q| q != self.size));
        sizes
    }
}

/// Resolve `fashion`, `lite0`, `lite2` or a manifest path to a spec and an ONNX file.
pub fn resolve(name: &str) -> Result<ResolvedModel, ModelError> {
    if let Some(spec) = builtin(name) {
        return in_builtin_dirs(spec);
    }
    let path = Path::new(name);
    if path.extension().is_some_and(|e| e == "toml") || path.is_file() {
        return read_manifest(path);
    }
    Err(ModelError::Unknown { name: name.to_string() })
}

/// A built-in spec with the first of [`builtin_dirs`] holding its files.
fn in_builtin_dirs(spec: ModelSpec) -> Result<ResolvedModel, ModelError> {
    let dirs = builtin_dirs();
    for d in &dirs {
        let p = d.join(&spec.file);
        let heads_there = spec.heads.as_ref().is_none_or(|h| d.join(h).is_file());
        if p.is_file() && heads_there {
            return Ok(ResolvedModel { spec, path: p });
        }
    }
    let searched = dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ");
    Err(ModelError::BuiltinMissing { file: spec.file, searched })
}

/// Full name of the garment finder (`training/garments.py`): which kind of garment covers
/// each 16-pixel cell of a photo ([`crate::garment::find`]).
pub const GARMENT_FINDER: &str = "lookalike-garments-1";

/// The garment finder's spec: not an embedding model (an index cannot be made with it),
/// whatever model the index has. Its output `kinds` is `[batch, 8, H/16, W/16]`; `size`
/// is the side it runs at, `dim` its channels.
pub fn garment_finder() -> Result<ResolvedModel, ModelError> {
    in_builtin_dirs(ModelSpec {
        name: GARMENT_FINDER.into(),
        file: format!("{GARMENT_FINDER}.onnx"),
        input: "input".into(),
        output: "kinds".into(),
        layout: Layout::Nchw,
        // An outfit seen whole: 16 cells a side, a shoe still a cell or two.
        size: 256,
        resize: ResizeMode::Pad,
        mean: [127.0 / 255.0; 3],
        std: [128.0 / 255.0; 3],
        dim: 8,
        query_size: None,
        heads: None,
        mask: None,
        close_match: None,
    })
}

/// Read a TOML manifest; its `file` is relative to the manifest's folder.
pub fn read_manifest(path: &Path) -> Result<ResolvedModel, ModelError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ModelError::ManifestRead { path: path.to_path_buf(), source })?;
    let spec: ModelSpec = toml::from_str(&text).map_err(|e| ModelError::ManifestInvalid {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    })?;
    spec.validate(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let onnx = dir.join(&spec.file);
    let heads = spec.heads.as_ref().map(|h| dir.join(h));
    for file in std::iter::once(&onnx).chain(heads.as_ref()) {
        if !file.is_file() {
            return Err(ModelError::ManifestInvalid {
                path: path.to_path_buf(),
                message: format!("model file {} does not exist", file.display()),
            });
        }
    }
    Ok(ResolvedModel { spec, path: onnx })
}

impl ResolvedModel {
    /// The class heads file beside the ONNX file, if the model has one.
    pub fn heads_path(&self) -> Option<PathBuf> {
        let h = self.spec.heads.as_ref()?;
        Some(self.path.parent().unwrap_or(Path::new(".")).join(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_r4_and_r3_have_int8_twins_and_query_precisions_parse() {
        assert_eq!(query_twin(FASHION).map(|t| (t.name, t.auto)), Some((FASHION_INT8, false)));
        assert_eq!(query_twin(FASHION_3).map(|t| (t.name, t.auto)), Some((FASHION_3_INT8, true)));
        assert_eq!(query_twin(FASHION_2), None);
        assert_eq!(query_twin(FASHION_INT8), None);
        assert_eq!(query_twin(FASHION_3_INT8), None);
        assert_eq!("INT8".parse::<QueryPrecision>(), Ok(QueryPrecision::Int8));
        assert_eq!("fp32".parse::<QueryPrecision>(), Ok(QueryPrecision::Fp32));
        assert_eq!("auto".parse::<QueryPrecision>(), Ok(QueryPrecision::Auto));
        assert!("int4".parse::<QueryPrecision>().unwrap_err().contains("auto, fp32, int8"));
    }

    #[test]
    fn builtin_names_resolve_to_specs() {
        let s = builtin("lite0").unwrap();
        assert_eq!((s.size, s.dim, s.layout), (224, 1280, Layout::Nchw));
        assert_eq!(builtin("lite2").unwrap().size, 260);
        let f = builtin(DEFAULT_MODEL).unwrap();
        assert_eq!((f.size, f.dim, f.input_size(true)), (128, 256, 160));
        assert_eq!(f.input_sizes(), vec![128, 160]);
        assert!(f.heads.is_some() && f.mask.is_some());
        assert_eq!(f.name, FASHION);
        // The first fashion model stays reachable by both its names, with its own files.
        let first = builtin("fashion-1").unwrap();
        assert_eq!(builtin(FASHION_1).unwrap(), first);
        assert_eq!(
            (first.file.as_str(), first.heads.as_deref()),
            ("lookalike-fashion.onnx", Some("lookalike-fashion.heads.json"))
        );
        assert_ne!(first.file, f.file);
        let second = builtin("fashion-2").unwrap();
        assert_eq!(builtin(FASHION_2).unwrap(), second);
        assert_eq!(second.file, "lookalike-fashion-2.onnx");
        assert_ne!(second.file, f.file);
        assert_eq!(builtin("fashion-4").unwrap(), f);
        let third = builtin("fashion-3").unwrap();
        assert_eq!(builtin(FASHION_3).unwrap(), third);
        assert_eq!(third.file, "lookalike-fashion-3.onnx");
        assert_ne!(third.file, f.file);
        let int8 = builtin("fashion-int8").unwrap();
        assert_eq!(int8.file, "lookalike-fashion-4-int8.onnx");
        assert_eq!(int8.heads, f.heads, "the int8 variant reads r4's heads");
        assert_eq!((int8.size, int8.dim, int8.input_size(true)), (128, 256, 160));
        let int8_3 = builtin("fashion-3-int8").unwrap();
        assert_eq!(int8_3.file, "lookalike-fashion-3-int8.onnx");
        assert_eq!(int8_3.heads, third.heads, "r3's int8 variant reads r3's heads");
        assert!(builtin("resnet").is_none());
    }

    #[test]
    fn unknown_name_is_an_error() {
        assert!(matches!(resolve("no-such-model"), Err(ModelError::Unknown { .. })));
    }

    #[test]
    fn manifest_with_bad_values_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.toml");
        std::fs::write(
            &p,
            "name='x'\nfile='x.onnx'\ninput='i'\noutput='o'\nsize=224\nmean=[0,0,0]\nstd=[0,1,1]\ndim=3\n",
        )
        .unwrap();
        let err = read_manifest(&p).unwrap_err().to_string();
        assert!(err.contains("std"), "{err}");
        std::fs::write(&p, "name='x'\n").unwrap();
        let err = read_manifest(&p).unwrap_err().to_string();
        assert!(err.contains("missing field"), "{err}");
    }
}
