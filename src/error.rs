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
    #[error(transparent)]
    Image(#[from] PreprocessError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error(transparent)]
    Category(#[from] CategoryError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Milvus(#[from] MilvusError),
    /// A file lookalike had to read or write (`action`: what it was doing with it).
    #[error("cannot {action} {}", .path.display())]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    /// A photo the caller named (a query, one to add) that cannot be read: the caller's
    /// mistake (`what`: which photo it was).
    #[error("cannot read {what} {}", .path.display())]
    Unreadable { what: &'static str, path: PathBuf, source: std::io::Error },
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
    /// The garment finder (for every garment of a photo) could not be loaded.
    #[error("the garment finder is not available: {0}")]
    FinderUnavailable(String),
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
                | Error::Unreadable { .. }
                | Error::Catalog(_)
                | Error::Model(_)
                | Error::Milvus(MilvusError::BadAddress { .. } | MilvusError::NotBuilt { .. })
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

/// An error and its causes on one line, `error: cause: cause`, each once (every error
/// of the library leaves its cause to `source()` and does not print it itself): where an
/// error becomes text (a log line, a message kept for later, a reply).
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// [`Chain`] as a `String`.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    Chain(e).to_string()
}
