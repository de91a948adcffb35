//! [`MilvusStore`]'s writes: a batch of changes checked whole, then written to the
//! collections in an order that leaves every item whole when a batch is cut short.

use std::collections::BTreeMap;

use super::{
    IDS_PER_CALL, MAX_ID, MilvusStore, backend, centroid_key, columns, filler, poisoned, row_key,
    search, text,
};
use crate::milvus::client::Column;
use crate::store::{Change, IndexInfo, ItemRecord, StoreError, check_dim, check_version};

impl MilvusStore {
    /// [`crate::store::Store::apply`]: every check that can refuse the batch before anything
    /// is written; then the description, the items, the deletions, the partition and the
    /// writer's version row, in that order.
    pub(super) fn write(
        &self,
        info: Option<&IndexInfo>,
        changes: &[Change],
    ) -> Result<Vec<u32>, StoreError> {
        let mut writes = self.writes.lock().map_err(|_| poisoned())?;
        // Everything that can refuse the batch is checked before anything is written.
        let dim = match info {
            Some(i) => {
                check_version(i)?;
                i.dim
            }
            None => match self.stored_dim()? {
                Some(d) => d,
                None if changes.is_empty() => return Ok(Vec::new()),
                None => {
                    return Err(StoreError::Backend(
                        "items written before the index is described".into(),
                    ));
                }
            },
        };
        check_dim(dim, changes)?;
        let record_ids: Vec<String> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Record { id, .. } => Some(id.clone()),
                _ => None,
            })
            .collect();
        let existing = self.get_many(&record_ids)?;
        // The batch's end state per id: Some(row) written, None deleted.
        let mut keys = Vec::new();
        let mut rows: BTreeMap<String, Option<(ItemRecord, Vec<f32>)>> = BTreeMap::new();
        let mut centroids = None;
        {
            let mut local = self.keys.lock().map_err(|_| poisoned())?;
            for c in changes {
                match c {
                    Change::Put { id, record, vector } => {
                        if id.len() > MAX_ID {
                            return Err(StoreError::Backend(format!(
                                "id {id:?} is longer than the {MAX_ID} bytes a Milvus index takes"
                            )));
                        }
                        let key = local.fresh(id, &record.hash)?;
                        keys.push(key);
                        rows.insert(
                            id.clone(),
                            Some((ItemRecord { key: Some(key), ..record.clone() }, vector.clone())),
                        );
                    }
                    Change::Record { id, record } => {
                        let current = match rows.get(id) {
                            Some(Some(row)) => Some(row.clone()),
                            Some(None) => None,
                            None => existing.get(id).cloned(),
                        };
                        let Some((old, vector)) = current else {
                            return Err(StoreError::Corrupt {
                                id: id.clone(),
                                message: "record update for a missing item".into(),
                            });
                        };
                        rows.insert(
                            id.clone(),
                            Some((ItemRecord { key: old.key, ..record.clone() }, vector)),
                        );
                    }
                    Change::Delete { id } => {
                        rows.insert(id.clone(), None);
                    }
                    Change::Centroids(c) => centroids = Some(c.clone()),
                }
            }
        }
        let mut puts = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut facets = Vec::new();
        let mut metadata = Vec::new();
        let mut deletes = Vec::new();
        for (id, row) in rows {
            match row {
                Some((mut record, vector)) => {
                    puts.3.push(row_key(&id));
                    facets.push(search::facets(&record.metadata));
                    // Keys are each process's own: the stored record has none.
                    record.key = None;
                    puts.1.push(text(&id, "record", &record)?);
                    metadata.push(record.metadata);
                    puts.0.push(id);
                    puts.2.extend(vector);
                }
                None => deletes.push(id),
            }
        }
        let info_text = info.map(|i| text("info", "description", i)).transpose()?;

        // Writes: the description first, the writer's version row last. No item row
        // depends on another, so a batch cut short leaves some of its items written
        // whole and the others as they were.
        if !self.exists().map_err(backend)? {
            let header = info.map_or(&[][..], |i| &i.columns[..]);
            self.ensure_collections(dim, header).map_err(backend)?;
        }
        if let Some(t) = info_text {
            self.put_meta(dim, vec![("info".to_string(), t, filler(dim))]).map_err(backend)?;
            let _ = self.dim.set(dim);
        }
        let schema = if puts.0.is_empty() { Default::default() } else { self.schema()? };
        for (((((ids, item_keys), records), vectors), facets), metadata) in puts
            .0
            .chunks(IDS_PER_CALL)
            .zip(puts.3.chunks(IDS_PER_CALL))
            .zip(puts.1.chunks(IDS_PER_CALL))
            .zip(puts.2.chunks(IDS_PER_CALL * dim.max(1)))
            .zip(facets.chunks(IDS_PER_CALL))
            .zip(metadata.chunks(IDS_PER_CALL))
        {
            let (client, items) = (self.client.clone(), self.items().to_string());
            let mut columns = vec![
                ("id".to_string(), Column::Strings(ids.to_vec())),
                ("key".to_string(), Column::Ints(item_keys.to_vec())),
                ("record".to_string(), Column::Strings(records.to_vec())),
                ("vector".to_string(), Column::Vectors { dim, data: vectors.to_vec() }),
            ];
            if schema.facets {
                columns.push((search::FACETS.to_string(), Column::Json(facets.to_vec())));
            }
            let metadata: Vec<&BTreeMap<String, String>> = metadata.iter().collect();
            for c in &schema.columns {
                columns.push((c.clone(), Column::Strings(columns::column_values(c, &metadata))));
            }
            self.run(async move { client.upsert(&items, columns).await }).map_err(backend)?;
        }
        for chunk in deletes.chunks(IDS_PER_CALL) {
            let (client, items, ids) =
                (self.client.clone(), self.items().to_string(), chunk.to_vec());
            self.run(async move { client.delete(&items, "id", &ids).await }).map_err(backend)?;
        }
        if !deletes.is_empty() {
            let mut local = self.keys.lock().map_err(|_| poisoned())?;
            for id in &deletes {
                local.by_id.remove(id);
            }
        }
        if let Some(c) = centroids {
            let mut counters = self.counters()?;
            let cells = c.len().checked_div(dim).unwrap_or(0);
            let rows: Vec<_> = c
                .chunks(dim.max(1))
                .enumerate()
                .map(|(i, v)| (centroid_key(i), String::new(), v.to_vec()))
                .collect();
            for chunk in rows.chunks(IDS_PER_CALL) {
                self.put_meta(dim, chunk.to_vec()).map_err(backend)?;
            }
            let stale: Vec<String> = (cells..counters.cells).map(centroid_key).collect();
            for chunk in stale.chunks(IDS_PER_CALL) {
                let (client, meta, ids) = (self.client.clone(), self.meta(), chunk.to_vec());
                self.run(async move { client.delete(&meta, "key", &ids).await })
                    .map_err(backend)?;
            }
            counters.cells = cells;
            counters.generation += 1;
            let t = text("counters", "counters", &counters)?;
            self.put_meta(dim, vec![("counters".into(), t, filler(dim))]).map_err(backend)?;
        }
        self.saw_now();
        if !changes.is_empty() {
            *writes += 1;
            let row = (self.writer.clone(), writes.to_string(), filler(dim));
            self.put_meta(dim, vec![row]).map_err(backend)?;
        }
        Ok(keys)
    }
}
