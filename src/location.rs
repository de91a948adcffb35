//! Where an index lives: a folder (LMDB, the embedded default) or a Milvus collection
//! (`milvus://HOST:PORT/COLLECTION`), given wherever `--index` is. Opening one gives the
//! [`Store`] every command works through, and the model its vectors were made with: a
//! folder holds its own copy; a collection records the model's name and hash, and the
//! model is taken from the built-in ones (or the manifest named by `--model`) and checked
//! against that hash.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::milvus::{MilvusAddress, MilvusStore};
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
            Self::Milvus(address) => {
                let store = MilvusStore::open(address)?;
                if !store.exists()? {
                    return Err(StoreError::NotAnIndex(address.to_string()).into());
                }
                Ok(Arc::new(store))
            }
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
        match self {
            Self::Folder(dir) => Ok(Arc::new(LmdbStore::open(dir)?)),
            Self::Milvus(address) => Ok(Arc::new(MilvusStore::open(address)?)),
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
            Self::Milvus(_) => {
                let name = requested.unwrap_or(&info.model.name);
                let found = model::resolve(name)?;
                if file_hash(&found.path)? != info.model_hash {
                    return Err(Error::ModelMismatch {
                        index: info.model.name.clone(),
                        requested: found.spec.name,
                    });
                }
                Ok(found)
            }
        }
    }
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
    let bytes =
        std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
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
