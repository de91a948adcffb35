//! The few Milvus calls lookalike makes, over gRPC, each with a deadline. Reads are retried
//! when the connection failed (they are idempotent), and a read refused because its
//! collection is not loaded (a server just restarted) loads it, waits, and is made again;
//! writes are not retried: a write whose answer was lost may have landed, and the
//! store's callers decide what to do again.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use super::proto::common::{
    ConsistencyLevel, DslType, KeyValuePair, LoadState, PlaceholderGroup, PlaceholderType,
    PlaceholderValue, SegmentState, Status,
};
use super::proto::milvus::milvus_service_client::MilvusServiceClient;
use super::proto::milvus::{
    CreateCollectionRequest, CreateIndexRequest, DeleteRequest, DescribeCollectionRequest,
    DescribeIndexRequest, DropCollectionRequest, FlushRequest, GetFlushStateRequest,
    GetLoadStateRequest, GetPersistentSegmentInfoRequest, GetQuerySegmentInfoRequest,
    HasCollectionRequest, LoadCollectionRequest, QueryRequest, QueryResults, SearchRequest,
    SearchResults, UpsertRequest, search_request,
};
use super::proto::schema::{
    CollectionSchema, DataType, FieldData, FieldSchema, FloatArray, JsonArray, LongArray,
    ScalarField, StringArray, VectorField, field_data, i_ds, scalar_field, vector_field,
};
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

/// A column of rows to write or read: strings, integers, JSON documents or vectors.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Strings(Vec<String>),
    Ints(Vec<i64>),
    /// Each row's JSON document, serialised.
    Json(Vec<Vec<u8>>),
    Vectors {
        dim: usize,
        data: Vec<f32>,
    },
}

/// A scalar field of a collection: text of at most so many bytes, a 64-bit integer, or a
/// JSON document (whose keys expressions can test).
#[derive(Debug, Clone, Copy)]
pub enum Field {
    Text(usize),
    Int,
    Json,
}

/// How a collection's vectors are indexed for search (inner product): Milvus's index
/// type and its build parameters, a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorIndexSpec {
    pub index_type: &'static str,
    pub params: &'static str,
}

impl VectorIndexSpec {
    /// Exact: every vector compared (what the meta collection needs for its few rows).
    pub const FLAT: Self = Self { index_type: "FLAT", params: "{}" };

    /// The items' index of `kind` with lookalike's build parameters: HNSW M 16,
    /// efConstruction 200; the IVF kinds 1,024 cells (Milvus's rule of thumb, 4 sqrt(n),
    /// for n from ~65k to 1M items is 1,000-4,000; fewer cells cost a little speed, not
    /// recall).
    pub fn of(kind: super::VectorIndexKind) -> Self {
        use super::VectorIndexKind::*;
        let params = match kind {
            Hnsw => r#"{"M": 16, "efConstruction": 200}"#,
            IvfFlat | IvfSq8 => r#"{"nlist": 1024}"#,
        };
        Self { index_type: kind.milvus_name(), params }
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

    pub async fn has_collection(&self, name: &str) -> Result<bool, MilvusError> {
        let req = HasCollectionRequest { collection_name: name.into(), ..Default::default() };
        let res = self
            .read("HasCollection", name, |mut c| {
                let req = req.clone();
                async move { c.has_collection(req).await }
            })
            .await?;
        check("HasCollection", name, res.status)?;
        Ok(res.value)
    }

    /// The names of a collection's fields.
    pub async fn field_names(&self, name: &str) -> Result<Vec<String>, MilvusError> {
        let req = DescribeCollectionRequest { collection_name: name.into(), ..Default::default() };
        let res = self
            .read("DescribeCollection", name, |mut c| {
                let req = req.clone();
                async move { c.describe_collection(req).await }
            })
            .await?;
        check("DescribeCollection", name, res.status)?;
        Ok(res.schema.map(|s| s.fields.into_iter().map(|f| f.name).collect()).unwrap_or_default())
    }

    /// Create a collection of `fields` (the first is the primary key, a string; a field
    /// named `vector` holds `dim` floats), index its vectors as `index` says (inner
    /// product) and load it, so that it answers queries.
    pub async fn create_collection(
        &self,
        name: &str,
        scalars: &[(&str, Field)],
        dim: usize,
        index: VectorIndexSpec,
    ) -> Result<(), MilvusError> {
        let mut fields: Vec<FieldSchema> = scalars
            .iter()
            .enumerate()
            .map(|(i, (field, kind))| match kind {
                Field::Text(max) => FieldSchema {
                    name: (*field).into(),
                    is_primary_key: i == 0,
                    data_type: DataType::VarChar as i32,
                    type_params: vec![kv("max_length", max)],
                    ..Default::default()
                },
                Field::Int => FieldSchema {
                    name: (*field).into(),
                    is_primary_key: i == 0,
                    data_type: DataType::Int64 as i32,
                    ..Default::default()
                },
                Field::Json => FieldSchema {
                    name: (*field).into(),
                    data_type: DataType::Json as i32,
                    ..Default::default()
                },
            })
            .collect();
        fields.push(FieldSchema {
            name: "vector".into(),
            data_type: DataType::FloatVector as i32,
            type_params: vec![kv("dim", dim)],
            ..Default::default()
        });
        let schema = CollectionSchema { name: name.into(), fields, ..Default::default() };
        let req = CreateCollectionRequest {
            collection_name: name.into(),
            schema: prost::Message::encode_to_vec(&schema),
            shards_num: 1,
            consistency_level: ConsistencyLevel::Strong as i32,
            ..Default::default()
        };
        let status =
            self.once("CreateCollection", name, self.inner.clone().create_collection(req)).await?;
        check("CreateCollection", name, Some(status))?;
        let req = CreateIndexRequest {
            collection_name: name.into(),
            field_name: "vector".into(),
            index_name: "vector".into(),
            extra_params: vec![
                kv("index_type", index.index_type),
                kv("metric_type", "IP"),
                kv("params", index.params),
            ],
            ..Default::default()
        };
        let status = self.once("CreateIndex", name, self.inner.clone().create_index(req)).await?;
        check("CreateIndex", name, Some(status))?;
        self.load(name).await
    }

    /// Load a collection and wait until it answers.
    pub async fn load(&self, name: &str) -> Result<(), MilvusError> {
        let req = LoadCollectionRequest { collection_name: name.into(), ..Default::default() };
        let status =
            self.once("LoadCollection", name, self.inner.clone().load_collection(req)).await?;
        check("LoadCollection", name, Some(status))?;
        let started = std::time::Instant::now();
        loop {
            let req = GetLoadStateRequest { collection_name: name.into(), ..Default::default() };
            let res = self
                .read("GetLoadState", name, |mut c| {
                    let req = req.clone();
                    async move { c.get_load_state(req).await }
                })
                .await?;
            check("GetLoadState", name, res.status)?;
            if res.state == LoadState::Loaded as i32 {
                return Ok(());
            }
            if started.elapsed() > LOAD_TIMEOUT {
                return Err(MilvusError::Transport {
                    call: "LoadCollection",
                    collection: name.into(),
                    message: format!("not loaded after {} s", LOAD_TIMEOUT.as_secs()),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until a collection another process is creating is loaded: it may still lack
    /// its vector index for a moment, so a load that fails is tried again until
    /// [`LOAD_TIMEOUT`].
    pub async fn wait_loaded(&self, name: &str) -> Result<(), MilvusError> {
        let started = std::time::Instant::now();
        loop {
            match self.load(name).await {
                Ok(()) => return Ok(()),
                Err(e) if started.elapsed() > LOAD_TIMEOUT => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// How many rows match `expr`.
    pub async fn count(&self, name: &str, expr: &str) -> Result<u64, MilvusError> {
        let cols = self.query(name, expr, &["count(*)"], None).await?;
        cols.iter()
            .find_map(|(_, c)| match c {
                Column::Ints(v) => v.first().and_then(|&n| u64::try_from(n).ok()),
                _ => None,
            })
            .ok_or_else(|| MilvusError::Data {
                call: "Query",
                collection: name.into(),
                message: "the server gave no count(*)".into(),
            })
    }

    pub async fn drop_collection(&self, name: &str) -> Result<(), MilvusError> {
        let req = DropCollectionRequest { collection_name: name.into(), ..Default::default() };
        let status =
            self.once("DropCollection", name, self.inner.clone().drop_collection(req)).await?;
        check("DropCollection", name, Some(status))
    }

    /// Insert or replace rows, given column by column (`names[i]` holds `columns[i]`).
    pub async fn upsert<N: AsRef<str>>(
        &self,
        name: &str,
        columns: Vec<(N, Column)>,
    ) -> Result<(), MilvusError> {
        let rows = columns.first().map_or(0, |(_, c)| match c {
            Column::Strings(s) => s.len(),
            Column::Ints(v) => v.len(),
            Column::Json(v) => v.len(),
            Column::Vectors { dim, data } => data.len() / (*dim).max(1),
        });
        if rows == 0 {
            return Ok(());
        }
        let fields_data =
            columns.into_iter().map(|(field, c)| to_field(field.as_ref(), c)).collect();
        let req = UpsertRequest {
            collection_name: name.into(),
            fields_data,
            num_rows: rows as u32,
            ..Default::default()
        };
        let res = self.once("Upsert", name, self.inner.clone().upsert(req)).await?;
        check("Upsert", name, res.status)
    }

    /// Seal what was written to a collection, so that the server builds its vector index
    /// over it and keeps it in its object storage, and wait (up to [`INDEX_TIMEOUT`]) until
    /// the segments are sealed and the index covers every row: until then rows are
    /// searched through Milvus's coarser interim index (recall@10 of shopper photos
    /// 0.963 unsealed, 0.989-0.991 right after the Flush call, 0.995-0.998 indexed).
    pub async fn flush(&self, name: &str) -> Result<(), MilvusError> {
        let req = FlushRequest { collection_names: vec![name.into()], ..Default::default() };
        let res = self.once("Flush", name, self.inner.clone().flush(req)).await?;
        check("Flush", name, res.status.clone())?;
        // The wait is for recall, not for the data (written whatever happens): a server
        // that cannot tell (milvus-lite has no segments) is not waited on.
        if let Err(e) = self.wait_indexed(name, &res).await {
            tracing::debug!(collection = name, error = %e, "not waiting for the vector index");
        }
        Ok(())
    }

    /// The index type of the collection's vectors (`None`: none built).
    pub async fn index_type(&self, name: &str) -> Result<Option<String>, MilvusError> {
        let req = DescribeIndexRequest {
            collection_name: name.into(),
            field_name: "vector".into(),
            ..Default::default()
        };
        let res = self.once("DescribeIndex", name, self.inner.clone().describe_index(req)).await?;
        if res.index_descriptions.is_empty() {
            return Ok(None);
        }
        check("DescribeIndex", name, res.status)?;
        Ok(res
            .index_descriptions
            .iter()
            .flat_map(|d| d.params.iter())
            .find(|p| p.key == "index_type")
            .map(|p| p.value.clone()))
    }

    /// Whether the vector index covers every sealed row of the collection.
    pub async fn index_built(&self, name: &str) -> Result<bool, MilvusError> {
        let req = DescribeIndexRequest {
            collection_name: name.into(),
            field_name: "vector".into(),
            ..Default::default()
        };
        let res = self.once("DescribeIndex", name, self.inner.clone().describe_index(req)).await?;
        check("DescribeIndex", name, res.status)?;
        Ok(res
            .index_descriptions
            .iter()
            .all(|d| d.pending_index_rows == 0 && d.indexed_rows >= d.total_rows))
    }

    async fn wait_indexed(
        &self,
        name: &str,
        flushed: &super::proto::milvus::FlushResponse,
    ) -> Result<(), MilvusError> {
        let started = std::time::Instant::now();
        let segments = flushed.coll_seg_i_ds.get(name).map(|l| l.data.clone()).unwrap_or_default();
        let flush_ts = flushed.coll_flush_ts.get(name).copied().unwrap_or_default();
        let pause = || tokio::time::sleep(Duration::from_millis(250));
        let waited_out = |what: &str| {
            tracing::warn!(
                collection = name,
                "{what} after {} s: searching it meanwhile may miss neighbours",
                INDEX_TIMEOUT.as_secs()
            );
        };
        loop {
            let req = GetFlushStateRequest {
                segment_i_ds: segments.clone(),
                flush_ts,
                collection_name: name.into(),
                ..Default::default()
            };
            let res =
                self.once("GetFlushState", name, self.inner.clone().get_flush_state(req)).await?;
            check("GetFlushState", name, res.status)?;
            if res.flushed {
                break;
            }
            if started.elapsed() > INDEX_TIMEOUT {
                waited_out("its segments are not sealed");
                return Ok(());
            }
            pause().await;
        }
        loop {
            if self.index_built(name).await? {
                break;
            }
            if started.elapsed() > INDEX_TIMEOUT {
                waited_out("its vector index is still building");
                return Ok(());
            }
            pause().await;
        }
        // Until the query nodes search the sealed, indexed copy of every flushed segment,
        // they search the rows in growing segments through Milvus's interim index, which
        // misses neighbours (measured: a 5,000-item collection's second-best item was
        // missing from searches for ~10 s after its index was built).
        loop {
            if self.sealed_segments_searched(name).await? {
                return Ok(());
            }
            if started.elapsed() > INDEX_TIMEOUT {
                waited_out("its sealed segments are not all loaded");
                return Ok(());
            }
            pause().await;
        }
    }

    /// Whether the query nodes hold every flushed segment of the collection (a
    /// compacted one's successor included) as a sealed segment.
    async fn sealed_segments_searched(&self, name: &str) -> Result<bool, MilvusError> {
        let req =
            GetPersistentSegmentInfoRequest { collection_name: name.into(), ..Default::default() };
        let res = self
            .once(
                "GetPersistentSegmentInfo",
                name,
                self.inner.clone().get_persistent_segment_info(req),
            )
            .await?;
        check("GetPersistentSegmentInfo", name, res.status)?;
        let flushed: Vec<i64> = res
            .infos
            .iter()
            .filter(|s| s.state == SegmentState::Flushed as i32 && s.num_rows > 0)
            .map(|s| s.segment_id)
            .collect();
        let req = GetQuerySegmentInfoRequest { collection_name: name.into(), ..Default::default() };
        let res = self
            .once("GetQuerySegmentInfo", name, self.inner.clone().get_query_segment_info(req))
            .await?;
        check("GetQuerySegmentInfo", name, res.status)?;
        let loaded: std::collections::HashSet<i64> =
            res.infos.iter().map(|s| s.segment_id).collect();
        Ok(flushed.iter().all(|id| loaded.contains(id)))
    }

    /// Delete the rows whose primary key `pk` is one of `ids`.
    pub async fn delete(&self, name: &str, pk: &str, ids: &[String]) -> Result<(), MilvusError> {
        if ids.is_empty() {
            return Ok(());
        }
        let req = DeleteRequest {
            collection_name: name.into(),
            expr: in_list(pk, ids),
            ..Default::default()
        };
        let res = self.once("Delete", name, self.inner.clone().delete(req)).await?;
        check("Delete", name, res.status)
    }

    /// The rows matching `expr` (at most `limit`, in primary-key order), as columns, read
    /// with Strong consistency (every write before the call).
    pub async fn query(
        &self,
        name: &str,
        expr: &str,
        fields: &[&str],
        limit: Option<usize>,
    ) -> Result<Vec<(String, Column)>, MilvusError> {
        self.query_window(name, expr, fields, Window { limit, offset: 0 }, None).await
    }

    /// [`Client::query`], `window.offset` rows skipped, seeing every write the server had
    /// when its clock read `seen` (a hybrid timestamp, as [`Client::search`] takes), or
    /// every write before the call when `None`.
    pub async fn query_window(
        &self,
        name: &str,
        expr: &str,
        fields: &[&str],
        window: Window,
        seen: Option<u64>,
    ) -> Result<Vec<(String, Column)>, MilvusError> {
        let mut params = Vec::new();
        if let Some(l) = window.limit {
            params.push(kv("limit", l));
        }
        if window.offset > 0 {
            params.push(kv("offset", window.offset));
        }
        let (consistency_level, guarantee_timestamp) = match seen {
            None => (ConsistencyLevel::Strong as i32, 0),
            Some(ts) => (ConsistencyLevel::Session as i32, ts.max(2)),
        };
        let req = QueryRequest {
            collection_name: name.into(),
            expr: expr.into(),
            output_fields: fields.iter().map(|f| (*f).to_string()).collect(),
            query_params: params,
            consistency_level,
            guarantee_timestamp,
            ..Default::default()
        };
        let res = self
            .read_loaded(
                "Query",
                name,
                |r: &QueryResults| &r.status,
                |mut c| {
                    let req = req.clone();
                    async move { c.query(req).await }
                },
            )
            .await?;
        check("Query", name, res.status)?;
        res.fields_data
            .into_iter()
            .map(|f| {
                let column = from_field(&f).ok_or_else(|| MilvusError::Data {
                    call: "Query",
                    collection: name.into(),
                    message: format!("field {} has a type lookalike does not store", f.field_name),
                })?;
                Ok((f.field_name, column))
            })
            .collect()
    }

    /// The `k` rows nearest `vector` by inner product among those matching `expr` (all
    /// when empty), best first, as (primary key, score). `params` are the index's search
    /// parameters (a JSON object). It sees every write the server had when its clock read
    /// `seen` (a hybrid timestamp: milliseconds << 18): a Strong search would wait for
    /// the server's next time tick (~200 ms) every time, this one only until the server
    /// has passed `seen`.
    pub async fn search(
        &self,
        name: &str,
        vector: &[f32],
        k: usize,
        expr: &str,
        params: &str,
        seen: u64,
    ) -> Result<Vec<(String, f32)>, MilvusError> {
        let found = self.search_fields(name, vector, k, expr, params, seen, &[]).await?;
        Ok(found.0)
    }

    /// [`Client::search`], with the `fields` of the rows found (as columns, in the order
    /// of the hits).
    #[allow(clippy::too_many_arguments)]
    pub async fn search_fields(
        &self,
        name: &str,
        vector: &[f32],
        k: usize,
        expr: &str,
        params: &str,
        seen: u64,
        fields: &[&str],
    ) -> Result<(Vec<(String, f32)>, Vec<(String, Column)>), MilvusError> {
        let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
        let group = PlaceholderGroup {
            placeholders: vec![PlaceholderValue {
                tag: "$0".into(),
                r#type: PlaceholderType::FloatVector as i32,
                values: vec![bytes],
                ..Default::default()
            }],
        };
        let req = SearchRequest {
            collection_name: name.into(),
            dsl: expr.into(),
            dsl_type: DslType::BoolExprV1 as i32,
            search_input: Some(search_request::SearchInput::PlaceholderGroup(
                prost::Message::encode_to_vec(&group),
            )),
            search_params: vec![
                kv("anns_field", "vector"),
                kv("topk", k),
                kv("metric_type", "IP"),
                kv("params", params),
                kv("round_decimal", -1),
            ],
            nq: 1,
            output_fields: fields.iter().map(|f| (*f).to_string()).collect(),
            consistency_level: ConsistencyLevel::Session as i32,
            guarantee_timestamp: seen.max(2),
            ..Default::default()
        };
        let res = self
            .read_loaded(
                "Search",
                name,
                |r: &SearchResults| &r.status,
                |mut c| {
                    let req = req.clone();
                    async move { c.search(req).await }
                },
            )
            .await?;
        check("Search", name, res.status)?;
        let bad = |message: &str| MilvusError::Data {
            call: "Search",
            collection: name.into(),
            message: message.into(),
        };
        let Some(data) = res.results else { return Ok((Vec::new(), Vec::new())) };
        let ids = match data.ids.and_then(|i| i.id_field) {
            Some(i_ds::IdField::StrId(s)) => s.data,
            None => Vec::new(),
            Some(_) => return Err(bad("the ids are not strings")),
        };
        if ids.len() != data.scores.len() {
            return Err(bad("as many ids as scores were not given"));
        }
        let columns = data
            .fields_data
            .iter()
            .map(|f| {
                let column = from_field(f).ok_or_else(|| {
                    bad(&format!("field {} has a type lookalike does not store", f.field_name))
                })?;
                Ok((f.field_name.clone(), column))
            })
            .collect::<Result<Vec<_>, MilvusError>>()?;
        Ok((ids.into_iter().zip(data.scores).collect(), columns))
    }

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

/// Which rows of a query's matches come back: `offset` skipped, then at most `limit`
/// (Milvus answers at most 16,384 past the offset's start).
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub limit: Option<usize>,
    pub offset: usize,
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

fn to_field(name: &str, column: Column) -> FieldData {
    let (r#type, field) = match column {
        Column::Strings(data) => (
            DataType::VarChar,
            field_data::Field::Scalars(ScalarField {
                data: Some(scalar_field::Data::StringData(StringArray { data })),
                ..Default::default()
            }),
        ),
        Column::Ints(data) => (
            DataType::Int64,
            field_data::Field::Scalars(ScalarField {
                data: Some(scalar_field::Data::LongData(LongArray { data })),
                ..Default::default()
            }),
        ),
        Column::Json(data) => (
            DataType::Json,
            field_data::Field::Scalars(ScalarField {
                data: Some(scalar_field::Data::JsonData(JsonArray { data })),
                ..Default::default()
            }),
        ),
        Column::Vectors { dim, data } => (
            DataType::FloatVector,
            field_data::Field::Vectors(VectorField {
                dim: dim as i64,
                data: Some(vector_field::Data::FloatVector(FloatArray { data })),
                ..Default::default()
            }),
        ),
    };
    FieldData {
        r#type: r#type as i32,
        field_name: name.into(),
        field: Some(field),
        ..Default::default()
    }
}

fn from_field(f: &FieldData) -> Option<Column> {
    match f.field.as_ref()? {
        field_data::Field::Scalars(ScalarField {
            data: Some(scalar_field::Data::StringData(s)),
            ..
        }) => Some(Column::Strings(s.data.clone())),
        field_data::Field::Scalars(ScalarField {
            data: Some(scalar_field::Data::LongData(v)),
            ..
        }) => Some(Column::Ints(v.data.clone())),
        field_data::Field::Vectors(VectorField {
            dim,
            data: Some(vector_field::Data::FloatVector(v)),
            ..
        }) => Some(Column::Vectors { dim: usize::try_from(*dim).ok()?, data: v.data.clone() }),
        _ => None,
    }
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
