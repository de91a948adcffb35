//! A collection's life: created with its schema and vector index, loaded, flushed (and
//! waited on until its index covers every row), described and dropped.

use std::time::Duration;

use super::{Client, INDEX_TIMEOUT, LOAD_TIMEOUT, check, kv};
use crate::milvus::MilvusError;
use crate::milvus::proto::common::{ConsistencyLevel, LoadState, SegmentState};
use crate::milvus::proto::milvus::{
    CreateCollectionRequest, CreateIndexRequest, DescribeCollectionRequest, DescribeIndexRequest,
    DropCollectionRequest, FlushRequest, GetFlushStateRequest, GetLoadStateRequest,
    GetPersistentSegmentInfoRequest, GetQuerySegmentInfoRequest, HasCollectionRequest,
    LoadCollectionRequest,
};
use crate::milvus::proto::schema::{CollectionSchema, DataType, FieldSchema};

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
    pub fn of(kind: crate::milvus::VectorIndexKind) -> Self {
        use crate::milvus::VectorIndexKind::*;
        let params = match kind {
            Hnsw => r#"{"M": 16, "efConstruction": 200}"#,
            IvfFlat | IvfSq8 => r#"{"nlist": 1024}"#,
        };
        Self { index_type: kind.milvus_name(), params }
    }
}

impl Client {
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

    pub async fn drop_collection(&self, name: &str) -> Result<(), MilvusError> {
        let req = DropCollectionRequest { collection_name: name.into(), ..Default::default() };
        let status =
            self.once("DropCollection", name, self.inner.clone().drop_collection(req)).await?;
        check("DropCollection", name, Some(status))
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
        flushed: &crate::milvus::proto::milvus::FlushResponse,
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
}
