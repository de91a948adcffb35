//! The library's one public error type: every module's error, plus the mistakes a caller
//! can make with an index (unknown id, unknown filter column, bad parameter).

use std::path::PathBuf;

use crate::catalog::CatalogError;
use crate::category::CategoryError;
use crate::embed::EmbedError;
use crate::fetch::FetchError;
use crate::milvus::MilvusError;
use crate::model::ModelError;
use crate::preprocess::PreprocessError;
use crate::projection::ProjectionError;
use crate::store::StoreError;

/// Everything that can go wrong in lookalike.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Image(#[from] PreprocessError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error(transparent)]
    Category(#[from] CategoryError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Milvus(#[from] MilvusError),
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "the index was built with model {index} but {requested} was asked for (or found under that name with another file); use a new index folder"
    )]
    ModelMismatch { index: String, requested: String },
    #[error("unknown id '{0}'")]
    UnknownId(String),
    #[error("unknown filter column '{column}' (columns: {known})")]
    UnknownColumn { column: String, known: String },
    #[error("invalid filter '{0}': expected column=value")]
    BadFilter(String),
    #[error("item '{id}': {message}")]
    BadItem { id: String, message: String },
    #[error("invalid parameter {name}: {message}")]
    BadParameter { name: &'static str, message: String },
}

impl Error {
    /// True when the caller's input, not the system, is at fault.
    pub fn is_user_error(&self) -> bool {
        if let Error::Fetch(f) = self {
            return f.is_user_error();
        }
        matches!(
            self,
            Error::Image(_)
                | Error::Embed(EmbedError::Preprocess(_))
                | Error::UnknownId(_)
                | Error::UnknownColumn { .. }
                | Error::BadFilter(_)
                | Error::BadParameter { .. }
                | Error::BadItem { .. }
                | Error::ModelMismatch { .. }
                | Error::Catalog(_)
                | Error::Model(_)
                | Error::Milvus(MilvusError::BadAddress { .. })
                | Error::Projection(
                    ProjectionError::Missing { .. }
                        | ProjectionError::BadParameter { .. }
                        | ProjectionError::NotEnoughData(_)
                        | ProjectionError::DimensionMismatch { .. }
                        | ProjectionError::ModelMismatch
                        | ProjectionError::UnsupportedVersion { .. }
                )
                | Error::Store(StoreError::NotAnIndex(_) | StoreError::UnsupportedVersion { .. })
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
