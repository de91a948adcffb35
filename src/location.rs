//! Where an index lives: a folder (LMDB, the embedded default) or a Milvus collection
//! (`milvus://HOST:PORT/COLLECTION`), given wherever `--index` is. Opening one gives the
//! [`Store`] every command works through, and the model its vectors were made with: a
//! folder holds its own copy; a collection records the model's name and hash, and the
//! model is taken from the built-in ones (or the manifest named by `--model`) and checked
//! against that hash.
//!
//! `--index` is parsed into a [`Location`] once, where it is given (the CLI's arguments,
//! the server's start-up); everything after takes the `Location` or what it opened. This
//! file and the stores are the only places that tell a folder from a collection.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::milvus::{MilvusAddress, VectorIndexKind};
use crate::model::{self, ResolvedModel};
use crate::store::{IndexInfo, LmdbStore, Store, StoreError};

/// The model's copy in an index folder.
pub const MODEL_FILE: &str = "model.onnx";

/// An index's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Folder(PathBuf),
    Milvus(MilvusAddress),
}

impl Location {
    /// What `--index` names: a Milvus address when it starts with `milvus://`, else a
    /// folder.
    pub fn of(path: &Path) -> Result<Self> {
        match path.to_str() {
            Some(s) if MilvusAddress::is_address(s) => Ok(Self::Milvus(MilvusAddress::parse(s)?)),
            _ => Ok(Self::Folder(path.to_path_buf())),
        }
    }

    /// [`Location::of`] from text, as a command-line argument parser wants it.
    pub fn parse(s: &str) -> Result<Self> {
        Self::of(Path::new(s))
    }

    /// The folder, for a folder index.
    pub fn folder(&self) -> Option<&Path> {
        match self {
            Self::Folder(p) => Some(p),
            Self::Milvus(_) => None,
        }
    }

    /// The existing index here (an error naming the place when there is none).
    pub fn open_existing(&self) -> Result<Arc<dyn Store>> {
        match self {
            Self::Folder(dir) => Ok(Arc::new(LmdbStore::open_existing(dir)?)),
            Self::Milvus(address) => collection(address, true),
        }
    }

    /// The existing index here, with its description and the model its vectors were made
    /// with (see [`Location::model`]): what a command that reads or searches starts from.
    pub fn open(&self, requested_model: Option<&str>) -> Result<OpenIndex> {
        let (store, info) = self.open_index()?;
        let model = self.model(&info, requested_model)?;
        Ok(OpenIndex { store, info, model })
    }

    /// The existing index here, opened for a bulk write (`lookalike repartition`): a folder
    /// of an older format is upgraded first; a place without an index is an error.
    pub fn open_for_writing(&self) -> Result<(Arc<dyn Store>, IndexInfo)> {
        let store: Arc<dyn Store> = match self {
            Self::Folder(dir) => {
                if !LmdbStore::is_index(dir) {
                    return Err(StoreError::NotAnIndex(self.to_string()).into());
                }
                Arc::new(LmdbStore::open(dir)?)
            }
            Self::Milvus(_) => self.open_existing()?,
        };
        let info = self.described(store.as_ref())?;
        Ok((store, info))
    }

    /// Where a file the index keeps is, in words for a report: a folder's own file, or
    /// the file's name in a collection.
    pub fn file_place(&self, name: &str) -> String {
        match self {
            Self::Folder(dir) => dir.join(name).display().to_string(),
            Self::Milvus(_) => format!("{self} ({name})"),
        }
    }

    /// The existing index here and its description (an error naming the place when
    /// there is none, or when it holds no description).
    pub fn open_index(&self) -> Result<(Arc<dyn Store>, IndexInfo)> {
        let store = self.open_existing()?;
        let info = self.described(store.as_ref())?;
        Ok((store, info))
    }

    /// The description of the index `store` holds here, which must have one.
    pub fn described(&self, store: &dyn Store) -> Result<IndexInfo> {
        Ok(store.info()?.ok_or_else(|| StoreError::NotAnIndex(self.to_string()))?)
    }

    /// The index here, created empty when there is none (`lookalike index`); a folder of
    /// an older format is upgraded.
    pub fn open_or_create(&self) -> Result<Arc<dyn Store>> {
        self.open_or_create_with(None)
    }

    /// [`Location::open_or_create`], a new collection's items indexed with `milvus_index`
    /// (`None`: HNSW). Asking for one is refused for a folder, and for a collection
    /// whose vectors another kind already indexes.
    pub fn open_or_create_with(
        &self,
        milvus_index: Option<VectorIndexKind>,
    ) -> Result<Arc<dyn Store>> {
        match (self, milvus_index) {
            (Self::Folder(dir), None) => Ok(Arc::new(LmdbStore::open(dir)?)),
            (Self::Folder(_), Some(_)) => Err(Error::BadParameter {
                name: "milvus-index",
                message: "it chooses a Milvus collection's vector index; this index is a folder"
                    .into(),
            }),
            (Self::Milvus(address), kind) => new_collection(address, kind),
        }
    }

    /// The model the index's vectors were made with: the folder's own copy, or for a
    /// collection the built-in model of that name (or `requested`, a name or manifest),
    /// refused unless its file is the one the index recorded.
    pub fn model(&self, info: &IndexInfo, requested: Option<&str>) -> Result<ResolvedModel> {
        match self {
            Self::Folder(dir) => {
                Ok(ResolvedModel { spec: info.model.clone(), path: dir.join(MODEL_FILE) })
            }
            Self::Milvus(_) => resolve_same(requested.unwrap_or(&info.model.name), info),
        }
    }

    /// The model an `index` run embeds with, and its file's hash: for an existing index
    /// its own (a folder's copy; `requested`, if given, must be the same file), for a new
    /// one `requested` or the default. A new folder index gets its copy of the model (and
    /// class heads) here; a collection only records the name and hash.
    pub fn adopt_model(
        &self,
        existing: Option<&IndexInfo>,
        requested: Option<&str>,
    ) -> Result<(ResolvedModel, String)> {
        let (found, hash) = match existing {
            Some(info) => {
                if let (Some(r), Self::Folder(_)) = (requested, self) {
                    resolve_same(r, info)?;
                }
                (self.model(info, requested)?, info.model_hash.clone())
            }
            None => {
                let found = model::resolve(requested.unwrap_or(model::DEFAULT_MODEL))?;
                let hash = file_hash(&found.path)?;
                (found, hash)
            }
        };
        match self {
            Self::Folder(dir) => {
                if existing.is_none() {
                    install_model(&found, dir)?;
                }
                let mut spec = found.spec;
                spec.file = MODEL_FILE.to_string();
                spec.heads = spec.heads.map(|_| crate::category::HEADS_FILE.to_string());
                Ok((ResolvedModel { spec, path: dir.join(MODEL_FILE) }, hash))
            }
            Self::Milvus(_) => Ok((found, hash)),
        }
    }
}

/// The model `name` (built-in or a manifest), refused unless its file is the one the
/// index's vectors were made with.
fn resolve_same(name: &str, info: &IndexInfo) -> Result<ResolvedModel> {
    let found = model::resolve(name)?;
    if file_hash(&found.path)? != info.model_hash {
        return Err(Error::ModelMismatch {
            index: info.model.name.clone(),
            requested: found.spec.name,
        });
    }
    Ok(found)
}

/// The store of a Milvus collection (`existing`: one that holds an index, else an error
/// naming it).
#[cfg(feature = "milvus")]
fn collection(address: &MilvusAddress, existing: bool) -> Result<Arc<dyn Store>> {
    let store = crate::milvus::MilvusStore::open(address)?;
    if existing && !store.exists()? {
        return Err(StoreError::NotAnIndex(address.to_string()).into());
    }
    Ok(Arc::new(store))
}

/// The store of a Milvus collection to write, whose items get `kind` of vector index
/// when it creates them, refused when they exist with another.
#[cfg(feature = "milvus")]
fn new_collection(
    address: &MilvusAddress,
    kind: Option<VectorIndexKind>,
) -> Result<Arc<dyn Store>> {
    let store = crate::milvus::MilvusStore::open(address)?;
    let Some(kind) = kind else { return Ok(Arc::new(store)) };
    if let Some(has) = store.vector_index()?
        && has != kind
    {
        return Err(Error::BadParameter {
            name: "milvus-index",
            message: format!(
                "{address} indexes its vectors with {has} already; {kind} applies to a new \
                 collection only (index into another collection for it)"
            ),
        });
    }
    Ok(Arc::new(store.with_vector_index(kind)))
}

/// Without the `milvus` feature an address still parses, and opening it says why not.
#[cfg(not(feature = "milvus"))]
fn collection(address: &MilvusAddress, _existing: bool) -> Result<Arc<dyn Store>> {
    Err(crate::milvus::MilvusError::NotBuilt { address: address.to_string() }.into())
}

#[cfg(not(feature = "milvus"))]
fn new_collection(
    address: &MilvusAddress,
    _kind: Option<VectorIndexKind>,
) -> Result<Arc<dyn Store>> {
    collection(address, false)
}

/// An index opened for reading and searching: its store, description and model.
pub struct OpenIndex {
    pub store: Arc<dyn Store>,
    pub info: IndexInfo,
    pub model: ResolvedModel,
}

/// Copy the model (and its class heads, checked first) into the index folder atomically
/// (write aside, then rename).
fn install_model(model: &ResolvedModel, dir: &Path) -> Result<()> {
    let heads = model.heads_path();
    if let Some(h) = &heads {
        let loaded = crate::category::Heads::load(h)?;
        if loaded.dim() != model.spec.dim {
            return Err(crate::category::CategoryError::Invalid {
                path: h.clone(),
                message: format!(
                    "the heads classify {}-d embeddings, the model gives {}",
                    loaded.dim(),
                    model.spec.dim
                ),
            }
            .into());
        }
    }
    let files = std::iter::once((model.path.clone(), MODEL_FILE))
        .chain(heads.map(|h| (h, crate::category::HEADS_FILE)));
    for (src, name) in files {
        let dst = dir.join(name);
        // Named per process: shards starting together on a new folder each install it.
        let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
        let io = |source| Error::Io { action: "install the model as", path: dst.clone(), source };
        std::fs::copy(&src, &tmp).map_err(io)?;
        std::fs::rename(&tmp, &dst).map_err(io)?;
    }
    Ok(())
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Folder(p) => write!(f, "{}", p.display()),
            Self::Milvus(a) => write!(f, "{a}"),
        }
    }
}

/// BLAKE3 of a file, hex.
pub fn file_hash(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_arguments_name_a_folder_or_a_collection() {
        assert_eq!(
            Location::of(Path::new("shop-index")).unwrap(),
            Location::Folder("shop-index".into())
        );
        let l = Location::of(Path::new("milvus://127.0.0.1:19530/shop")).unwrap();
        assert_eq!(l.to_string(), "milvus://127.0.0.1:19530/shop");
        assert!(l.folder().is_none());
        let e = Location::of(Path::new("milvus://127.0.0.1/shop")).unwrap_err().to_string();
        assert!(e.contains("no port"), "{e}");
    }
}
