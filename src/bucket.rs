//! Catalogues in object storage: photos and their metadata table under an
//! `s3://BUCKET/PREFIX` address, on AWS S3 or any S3-compatible server.
//!
//! A client of other servers, as `fetch` is, but for the catalogue rather than for query
//! photos: the address comes from whoever runs `index` or `serve`, so no address guard
//! applies. Where the store is and who we are come from the usual AWS environment
//! (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_SKIP_SIGNATURE` for public buckets, ...), read by `object_store`, the well-kept
//! crate for this.
//!
//! Every call is bounded: a connection within [`CONNECT_TIMEOUT`], a request within
//! [`REQUEST_TIMEOUT`], and only reads, which are idempotent, are retried (a few times,
//! within [`RETRY_WINDOW`]), so a store that is down or stalls gives a clear error
//! rather than a hang. An object larger than [`crate::catalog::MAX_PHOTO_BYTES`] is
//! refused before its body is read.
//!
//! The calls are async (the server awaits them); [`Bucket::blocking`] gives indexing,
//! which runs on rayon's threads, a handle that waits for them on a small runtime of its
//! own.

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

/// Longest wait for a connection to the store.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one request's answer, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Retries of a failed read stop after this long from the first try.
pub const RETRY_WINDOW: Duration = Duration::from_secs(30);
/// Retries of one failed read at most.
pub const MAX_RETRIES: usize = 3;

/// Errors of object storage, each naming the address it concerns.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("'{address}' is not an object storage address: {reason} (expected s3://BUCKET/PREFIX)")]
    BadAddress { address: String, reason: String },
    #[error("cannot reach the object store for {address}: {message}")]
    Client { address: String, message: String },
    #[error("{address}: no such object")]
    NotFound { address: String },
    #[error("nothing is stored under {address}: check the bucket and the prefix")]
    Empty { address: String },
    #[error("{address} is larger than {limit_mb} MB")]
    TooLarge { address: String, limit_mb: u64 },
}

/// Where a catalogue lies in object storage: a bucket and a key prefix (no leading or
/// trailing `/`; empty: the whole bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketAddress {
    pub bucket: String,
    pub prefix: String,
}

impl BucketAddress {
    /// Whether `s` is meant as an object storage address (and so must parse as one).
    pub fn is_address(s: &str) -> bool {
        s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("s3://"))
    }

    /// Parse `s3://BUCKET[/PREFIX]`.
    pub fn parse(s: &str) -> Result<Self, BucketError> {
        let bad = |reason: &str| BucketError::BadAddress {
            address: s.to_string(),
            reason: reason.to_string(),
        };
        if !Self::is_address(s) {
            return Err(bad("only s3:// addresses are supported"));
        }
        let rest = s.get(5..).unwrap_or_default();
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's own rule for bucket names (3-63 of a-z, 0-9, '.', '-'), so that a typo is
        // named here rather than as a signature error from the server.
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.as_bytes()[0].is_ascii_alphanumeric();
        if !valid_bucket {
            return Err(bad(
                "the bucket name must be 3 to 63 lowercase letters, digits, '.' or '-'",
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..") {
            return Err(bad("the prefix may not hold '.' or '..' parts"));
        }
        if prefix.contains("//") {
            return Err(bad("the prefix may not hold empty parts ('//')"));
        }
        Ok(Self { bucket: bucket.to_string(), prefix: prefix.to_string() })
    }

    /// The object key of a path relative to the prefix.
    fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() { rel.to_string() } else { format!("{}/{rel}", self.prefix) }
    }
}

impl std::fmt::Display for BucketAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// One object below the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Its key relative to the prefix, `/`-separated.
    pub rel: String,
    pub size: u64,
}

/// A catalogue's bucket, opened: cheap to clone, shared by every request.
#[derive(Debug, Clone)]
pub struct Bucket {
    address: BucketAddress,
    store: Arc<AmazonS3>,
}

impl Bucket {
    /// A client for `address`, configured from the environment. Opening makes no request:
    /// an unreachable store is reported by the first call.
    pub fn open(address: BucketAddress) -> Result<Self, BucketError> {
        let builder = AmazonS3Builder::from_env().with_bucket_name(&address.bucket);
        // A plain-HTTP endpoint was asked for by name (a local S3-compatible server):
        // allow it rather than fail on the scheme. (Set here: the client options given
        // below replace the ones `from_env` read.)
        let endpoint = std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT"));
        let allow_http = endpoint.is_ok_and(|e| e.starts_with("http://"))
            || std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
        let client = ClientOptions::new()
            .with_allow_http(allow_http)
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT);
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: MAX_RETRIES,
            retry_timeout: RETRY_WINDOW,
        };
        let store = builder.with_client_options(client).with_retry(retry).build().map_err(|e| {
            BucketError::Client { address: address.to_string(), message: e.to_string() }
        })?;
        Ok(Self { address, store: Arc::new(store) })
    }

    pub fn address(&self) -> &BucketAddress {
        &self.address
    }

    fn error(&self, rel: Option<&str>, e: object_store::Error) -> BucketError {
        let address = match rel {
            Some(rel) => format!("s3://{}/{}", self.address.bucket, self.address.key(rel)),
            None => self.address.to_string(),
        };
        match e {
            object_store::Error::NotFound { .. } => BucketError::NotFound { address },
            e => BucketError::Client { address, message: flatten(&e) },
        }
    }

    /// Every object below the prefix, in key order.
    pub async fn list(&self) -> Result<Vec<Object>, BucketError> {
        let prefix = (!self.address.prefix.is_empty())
            .then(|| ObjectPath::from(self.address.prefix.as_str()));
        let metas: Vec<_> = self.store.list(prefix.as_ref()).try_collect().await.map_err(|e| {
            // Listing fails as "not found" only for the bucket itself (S3 says
            // NoSuchBucket with a 404, which object_store passes on as it is).
            let missing = matches!(e, object_store::Error::NotFound { .. })
                || flatten(&e).contains("NoSuchBucket");
            if missing {
                BucketError::Client {
                    address: self.address.to_string(),
                    message: format!("no bucket named '{}'", self.address.bucket),
                }
            } else {
                self.error(None, e)
            }
        })?;
        let mut out: Vec<Object> = metas
            .into_iter()
            .filter_map(|m| {
                let key = m.location.as_ref();
                let rel = if self.address.prefix.is_empty() {
                    key
                } else {
                    key.strip_prefix(self.address.prefix.as_str())?.strip_prefix('/')?
                };
                Some(Object { rel: rel.to_string(), size: m.size })
            })
            .collect();
        out.sort_by(|a, b| a.rel.cmp(&b.rel));
        // An empty listing is most often a mistyped prefix; taken as "the catalogue is
        // now empty", it would empty the index.
        if out.is_empty() {
            return Err(BucketError::Empty { address: self.address.to_string() });
        }
        Ok(out)
    }

    /// The bytes of the object at `rel` (relative to the prefix), at most `limit` of them.
    pub async fn get(&self, rel: &str, limit: u64) -> Result<Vec<u8>, BucketError> {
        let path = ObjectPath::parse(self.address.key(rel))
            .map_err(|e| self.error(Some(rel), object_store::Error::from(e)))?;
        let got = self.store.get(&path).await.map_err(|e| self.error(Some(rel), e))?;
        let too_large = || BucketError::TooLarge {
            address: format!("s3://{}/{}", self.address.bucket, self.address.key(rel)),
            limit_mb: limit >> 20,
        };
        if got.meta.size > limit {
            return Err(too_large());
        }
        let bytes = got.bytes().await.map_err(|e| self.error(Some(rel), e))?;
        if bytes.len() as u64 > limit {
            return Err(too_large());
        }
        Ok(bytes.to_vec())
    }

    /// A handle whose calls wait for their answer, for code that is not async.
    pub fn blocking(&self) -> Result<BlockingBucket, BucketError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lookalike-s3")
            .enable_all()
            .build()
            .map_err(|e| BucketError::Client {
                address: self.address.to_string(),
                message: format!("cannot start the client's runtime: {e}"),
            })?;
        Ok(BlockingBucket { bucket: self.clone(), runtime: Arc::new(runtime) })
    }
}

/// [`Bucket`]'s calls, each waited for: safe from any thread that is not itself running
/// async code (rayon's workers, the CLI).
#[derive(Debug, Clone)]
pub struct BlockingBucket {
    bucket: Bucket,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl BlockingBucket {
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    pub fn list(&self) -> Result<Vec<Object>, BucketError> {
        self.runtime.block_on(self.bucket.list())
    }

    pub fn get(&self, rel: &str, limit: u64) -> Result<Vec<u8>, BucketError> {
        self.runtime.block_on(self.bucket.get(rel, limit))
    }
}

/// An error with its causes, on one line: object_store's outer message alone often says
/// only "Generic S3 error".
fn flatten(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    // Servers' XML error bodies arrive with their line breaks: one line for the log.
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_name_their_problem() {
        let a = BucketAddress::parse("s3://shop-photos/2026/catalogue/").unwrap();
        assert_eq!(a.bucket, "shop-photos");
        assert_eq!(a.prefix, "2026/catalogue");
        assert_eq!(a.to_string(), "s3://shop-photos/2026/catalogue");
        assert_eq!(a.key("x/1.jpg"), "2026/catalogue/x/1.jpg");
        let whole = BucketAddress::parse("S3://shop").unwrap();
        assert_eq!(whole.prefix, "");
        assert_eq!(whole.key("1.jpg"), "1.jpg");
        for bad in
            ["s3://", "s3://Ab", "s3://a_b/x", "s3://shop/../etc", "s3://shop/a//b", "gs://shop"]
        {
            let e = BucketAddress::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("s3://BUCKET/PREFIX"), "{bad}: {e}");
        }
        assert!(BucketAddress::is_address("s3://x") && !BucketAddress::is_address("photos/s3"));
    }
}
