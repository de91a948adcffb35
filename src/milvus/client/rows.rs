//! A collection's rows: written column by column, deleted by key, queried by expression
//! and searched by vector, with the conversions between lookalike's columns and Milvus's
//! field data.

use super::{Client, check, in_list, kv};
use crate::milvus::MilvusError;
use crate::milvus::proto::common::{
    ConsistencyLevel, DslType, PlaceholderGroup, PlaceholderType, PlaceholderValue,
};
use crate::milvus::proto::milvus::{
    DeleteRequest, QueryRequest, QueryResults, SearchRequest, SearchResults, UpsertRequest,
    search_request,
};
use crate::milvus::proto::schema::{
    DataType, FieldData, FloatArray, JsonArray, LongArray, ScalarField, StringArray, VectorField,
    field_data, i_ds, scalar_field, vector_field,
};

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

impl Client {
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
        columns_of("Query", name, res.fields_data)
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
        let columns = columns_of("Search", name, data.fields_data)?;
        Ok((ids.into_iter().zip(data.scores).collect(), columns))
    }
}

/// Which rows of a query's matches come back: `offset` skipped, then at most `limit`
/// (Milvus answers at most 16,384 past the offset's start).
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub limit: Option<usize>,
    pub offset: usize,
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

/// An answer's fields as columns, named; one of a type lookalike does not store is an error
/// of `call`.
fn columns_of(
    call: &'static str,
    collection: &str,
    fields: Vec<FieldData>,
) -> Result<Vec<(String, Column)>, MilvusError> {
    fields
        .into_iter()
        .map(|f| {
            let column = from_field(&f).ok_or_else(|| MilvusError::Data {
                call,
                collection: collection.into(),
                message: format!("field {} has a type lookalike does not store", f.field_name),
            })?;
            Ok((f.field_name, column))
        })
        .collect()
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
