//! Query photos made ready for the model: squared as a studio shot (padded) or a snapshot
//! (cropped, at the model's snapshot size), a snapshot cut to the garment the model finds
//! in it, then embedded; many files at once in batches per input size.

use std::time::Instant;

use super::{Answer, Engine, Query, Timing};
use crate::error::Result;
use crate::model::ResizeMode;
use crate::preprocess::{self, Crop, QueryResize};

/// A query photo's vector (in stored form: the index's colour weight).
#[derive(Debug, Clone)]
pub struct Embedded {
    pub vector: Vec<f32>,
    /// Squared by cropping, as a snapshot rather than a studio shot.
    pub snapshot: bool,
    /// The garment's square in the photo, when it was found and the photo searched by it.
    pub garment: Option<Crop>,
}

/// A query photo made ready for the model.
#[derive(Debug, Clone)]
pub struct QueryInput {
    /// `views` tensors end to end: the photo as it is searched, and for a located garment
    /// the whole photo too (their embeddings are averaged, see [`crate::embed::Embedder::embed_views`]).
    pub tensor: Vec<f32>,
    pub views: usize,
    /// Its side in pixels (snapshots may run larger than catalogue photos).
    pub size: u32,
    pub snapshot: bool,
    pub garment: Option<Crop>,
}

impl Engine {
    /// Embed a photo given as file bytes (`locate`: see [`Query::locate`]).
    pub fn embed_photo(
        &self,
        bytes: &[u8],
        crop: Option<Crop>,
        resize: QueryResize,
        locate: Option<bool>,
    ) -> Result<(Embedded, Timing)> {
        let t0 = Instant::now();
        let img = preprocess::decode(bytes)?;
        let t1 = Instant::now();
        let input = self.query_tensor(&img, crop, resize, locate)?;
        let vector = self.embedder.embed_views(&input.tensor, input.views, input.size)?;
        let t2 = Instant::now();
        let timing = Timing {
            decode_ms: (t1 - t0).as_secs_f64() * 1e3,
            embed_ms: (t2 - t1).as_secs_f64() * 1e3,
            search_ms: 0.0,
            rerank_ms: 0.0,
        };
        Ok((Embedded { vector, snapshot: input.snapshot, garment: input.garment }, timing))
    }

    /// The model input for a decoded query photo: squared as a studio shot (padded) or a
    /// snapshot (cropped; at the model's snapshot size), and a snapshot cut to the
    /// garment the model finds in it, unless a crop is given or `locate` says no.
    pub fn query_tensor(
        &self,
        img: &image::RgbImage,
        crop: Option<Crop>,
        resize: QueryResize,
        locate: Option<bool>,
    ) -> Result<QueryInput> {
        let spec = self.embedder.spec();
        let cropped;
        let src = match crop {
            Some(c) => {
                cropped = preprocess::apply_crop(img, c)?;
                &cropped
            }
            None => img,
        };
        let mode = resize.resolve(src);
        let snapshot = mode == ResizeMode::Crop;
        let size = spec.input_size(snapshot);
        let wanted = crop.is_none() && spec.mask.is_some() && locate.unwrap_or(snapshot);
        let whole = preprocess::tensor_at(src, spec, None, mode, size)?;
        if wanted && let Some(garment) = self.garment_in(src, size)? {
            let cut = preprocess::apply_crop(src, garment)?;
            let mut tensor = preprocess::tensor_at(&cut, spec, None, ResizeMode::Crop, size)?;
            // A small garment is searched by its own view; a large one's view is averaged
            // with the whole photo's, which keeps what the mask missed (sleeves cut off
            // make a T-shirt a vest).
            let (w, h) = src.dimensions();
            let share = f64::from(garment.w) * f64::from(garment.h) / (f64::from(w) * f64::from(h));
            let views = if share < crate::garment::ALONE_BELOW {
                1
            } else {
                tensor.extend_from_slice(&whole);
                2
            };
            return Ok(QueryInput { tensor, views, size, snapshot, garment: Some(garment) });
        }
        Ok(QueryInput { tensor: whole, views: 1, size, snapshot, garment: None })
    }

    /// The garment's square in a photo: the model's mask over the whole photo (padded to
    /// a square, so that nothing is cut off), see [`crate::garment`].
    pub fn garment_in(&self, img: &image::RgbImage, size: u32) -> Result<Option<Crop>> {
        let spec = self.embedder.spec();
        let tensor = preprocess::tensor_at(img, spec, None, ResizeMode::Pad, size)?;
        let Some(mask) = self.embedder.garment_mask(&tensor, size)? else { return Ok(None) };
        let (w, h) = img.dimensions();
        Ok(crate::garment::locate(&mask.values, mask.rows, mask.cols, w, h))
    }

    /// Embed many photo files in batches; one result per file, failures as messages.
    pub fn embed_files(
        &self,
        files: &[std::path::PathBuf],
        resize: QueryResize,
        locate: Option<bool>,
    ) -> Vec<std::result::Result<Embedded, String>> {
        use rayon::prelude::*;
        let dim = self.info.dim;
        let mut out = Vec::with_capacity(files.len());
        for chunk in files.chunks(32) {
            let inputs: Vec<std::result::Result<QueryInput, String>> = chunk
                .par_iter()
                .map(|f| {
                    let bytes =
                        crate::catalog::read_photo(f).map_err(|e| format!("cannot read: {e}"))?;
                    let img = preprocess::decode(&bytes).map_err(|e| e.to_string())?;
                    self.query_tensor(&img, None, resize, locate).map_err(|e| e.to_string())
                })
                .collect();
            // One model run per input size in the chunk (studio shots and snapshots).
            let mut vectors: Vec<Option<std::result::Result<Vec<f32>, String>>> =
                vec![None; inputs.len()];
            for (i, input) in inputs.iter().enumerate() {
                if let Some(t) = input.as_ref().ok().filter(|t| t.views > 1) {
                    let v = self.embedder.embed_views(&t.tensor, t.views, t.size);
                    vectors[i] = Some(v.map_err(|e| e.to_string()));
                }
            }
            for size in self.embedder.spec().input_sizes() {
                let rows: Vec<usize> = (0..inputs.len())
                    .filter(|&i| inputs[i].as_ref().is_ok_and(|t| t.size == size && t.views == 1))
                    .collect();
                let batch: Vec<f32> = rows
                    .iter()
                    .filter_map(|&i| inputs[i].as_ref().ok())
                    .flat_map(|t| t.tensor.iter().copied())
                    .collect();
                match self.embedder.embed_tensors_at(&batch, rows.len(), size) {
                    Ok(v) => {
                        for (&i, v) in rows.iter().zip(v.chunks_exact(dim)) {
                            vectors[i] = Some(Ok(v.to_vec()));
                        }
                    }
                    Err(e) => rows.iter().for_each(|&i| vectors[i] = Some(Err(e.to_string()))),
                }
            }
            for (input, vector) in inputs.into_iter().zip(vectors) {
                out.push(input.and_then(|t| {
                    let vector = vector.ok_or("missing vector")??;
                    Ok(Embedded { vector, snapshot: t.snapshot, garment: t.garment })
                }));
            }
        }
        out
    }

    /// Search with a photo.
    pub fn search_photo(&self, bytes: &[u8], q: &Query) -> Result<Answer> {
        Ok(self.search_photo_embedded(bytes, q)?.0)
    }

    /// [`Engine::search_photo`], with the photo's vector (for `/api/embed`, and for
    /// refining the search later without the photo).
    pub fn search_photo_embedded(&self, bytes: &[u8], q: &Query) -> Result<(Answer, Embedded)> {
        Self::check_k(q.k)?;
        let (e, timing) = self.embed_photo(bytes, q.crop, q.resize, q.locate)?;
        let t = Instant::now();
        let mut answer = self.search_embedded(&e, q)?;
        answer.timing = Timing {
            search_ms: t.elapsed().as_secs_f64() * 1e3,
            rerank_ms: answer.timing.rerank_ms,
            ..timing
        };
        Ok((answer, e))
    }
}
