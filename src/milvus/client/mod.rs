//! The few Milvus calls lookalike makes, over gRPC, each with a deadline. Reads are retried
//! when the connection failed (they are idempotent), and a read refused because its
//! collection is not loaded (a server just restarted) loads it, waits, and is made again;
//! writes are not retried: a write whose answer was lost may have landed, and the
//! store's callers decide what to do again.

mod collection;
mod rows;

pub use collection::{Field, VectorIndexSpec};
pub use rows::{Column, Window};

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use super::proto::common::{KeyValuePair, Status};
use super::proto::milvus::milvus_service_client::MilvusServiceClient;
use super::{MilvusAddress, MilvusError};

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one call may take (a load of a big collection is polled, not waited on).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a collection may take to load before the call gives up.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a flush waits for its segments to seal and the vector index to cover them;
/// past it the rows are kept and searched all the same (partly through Milvus's coarser
/// interim index, until the build ends).
const INDEX_TIMEOUT: Duration = Duration::from_secs(600);
/// Attempts of an idempotent call whose connection failed.
const READ_ATTEMPTS: u32 = 3;

/// A connection to one Milvus server (cheap to clone: clones share it).
#[derive(Clone)]
pub struct Client {
    inner: MilvusServiceClient<Channel>,
    address: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("address", &self.address).finish()
    }
}

/// Whether an answer says the collection is not loaded (Milvus 2.3's code 101): what a
/// restarted server says of every collection until it has loaded them again.
#[allow(deprecated)]
fn not_loaded(status: &Option<Status>) -> bool {
    status.as_ref().is_some_and(|s| {
        s.code == 101 || (s.code != 0 || s.error_code != 0) && s.reason.contains("not loaded")
    })
}

/// The checks every answer gets: a status of 0. Servers before 2.3 (and milvus-lite) set
/// only the deprecated `error_code`, later ones `code` too.
#[allow(deprecated)]
fn check(call: &'static str, collection: &str, status: Option<Status>) -> Result<(), MilvusError> {
    match status {
        Some(s) if s.code != 0 || s.error_code != 0 => Err(MilvusError::Refused {
            call,
            collection: collection.into(),
            code: if s.code != 0 { s.code } else { s.error_code },
            reason: s.reason,
        }),
        _ => Ok(()),
    }
}

fn kv(key: &str, value: impl ToString) -> KeyValuePair {
    KeyValuePair { key: key.into(), value: value.to_string() }
}

impl Client {
    /// Open a connection to the server of `address` (the collection is not looked at).
    pub async fn connect(address: &MilvusAddress) -> Result<Self, MilvusError> {
        let fail = |e: &dyn std::fmt::Display| MilvusError::Connect {
            address: address.to_string(),
            message: e.to_string(),
        };
        let endpoint = Endpoint::from_shared(address.endpoint())
            .map_err(|e| fail(&e))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT);
        let channel = endpoint.connect().await.map_err(|e| fail(&flatten(&e)))?;
        Ok(Self {
            inner: MilvusServiceClient::new(channel)
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20),
            address: address.to_string(),
        })
    }

    fn transport(&self, call: &'static str, collection: &str, e: tonic::Status) -> MilvusError {
        MilvusError::Transport {
            call,
            collection: collection.into(),
            message: format!("{} ({})", e.message(), e.code()),
        }
    }
}

impl Client {
    /// A call made once (a write, whose answer may be lost after it landed), its transport
    /// error named.
    async fn once<T>(
        &self,
        call: &'static str,
        collection: &str,
        fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, MilvusError> {
        let started = std::time::Instant::now();
        let res = fut.await;
        tracing::debug!(call, collection, ms = started.elapsed().as_secs_f64() * 1e3, "milvus");
        res.map(tonic::Response::into_inner).map_err(|e| self.transport(call, collection, e))
    }

    /// A read of a collection's rows ([`Client::read`]): one refused because the collection
    /// is not loaded (a server just restarted) loads it, waits, and is made once more.
    async fn read_loaded<T, F, Fut>(
        &self,
        call: &'static str,
        collection: &str,
        status: fn(&T) -> &Option<Status>,
        f: F,
    ) -> Result<T, MilvusError>
    where
        F: Fn(MilvusServiceClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let res = self.read(call, collection, &f).await?;
        if !not_loaded(status(&res)) {
            return Ok(res);
        }
        self.load(collection).await?;
        self.read(call, collection, f).await
    }

    /// An idempotent call, tried again (after 0.2 s, then 0.4 s) when the connection failed.
    async fn read<T, F, Fut>(
        &self,
        call: &'static str,
        collection: &str,
        f: F,
    ) -> Result<T, MilvusError>
    where
        F: Fn(MilvusServiceClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut attempt = 0;
        let started = std::time::Instant::now();
        loop {
            attempt += 1;
            match f(self.inner.clone()).await {
                Ok(res) => {
                    let ms = started.elapsed().as_secs_f64() * 1e3;
                    tracing::debug!(call, collection, ms, attempt, "milvus");
                    return Ok(res.into_inner());
                }
                Err(e)
                    if attempt < READ_ATTEMPTS
                        && matches!(e.code(), tonic::Code::Unavailable | tonic::Code::Unknown) =>
                {
                    tokio::time::sleep(Duration::from_millis(200 << (attempt - 1))).await;
                }
                Err(e) => return Err(self.transport(call, collection, e)),
            }
        }
    }
}

/// Milvus's hybrid timestamp of this machine's clock now: milliseconds since the epoch,
/// shifted past the 18 bits of its logical counter.
pub fn hybrid_now() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    ms << 18
}

/// `pk in ["a", "b"]`, every value quoted.
pub fn in_list(pk: &str, ids: &[String]) -> String {
    let quoted: Vec<String> = ids.iter().map(|i| super::quote(i)).collect();
    format!("{pk} in [{}]", quoted.join(", "))
}

/// An error and its causes on one line (tonic's connect errors hide the reason inside).
fn flatten(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
