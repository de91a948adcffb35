//! Query photos made ready for the model: squared as a studio shot (padded) or a snapshot
//! (cropped, at the model's snapshot size), a snapshot cut to the garment the model finds
//! in it, then embedded; many files at once in batches per input size.

use std::time::Instant;

use super::{Answer, Engine, Query, Timing};
use crate::colour;
use crate::error::Result;
use crate::model::ResizeMode;
use crate::preprocess::{self, Crop};

/// A query photo's vector (in stored form: the index's colour weight).
#[derive(Debug, Clone)]
pub struct Embedded {
    pub vector: Vec<f32>,
    /// Squared by cropping, as a snapshot rather than a studio shot.
    pub snapshot: bool,
    /// The garment's square in the photo, when it was found and the photo searched by it.
    pub garment: Option<Crop>,
    /// The colour part is the garment's own pixels' (the model's mask), not the square's.
    pub garment_colour: bool,
}

/// A query photo made ready for the model.
#[derive(Debug, Clone)]
pub struct QueryInput {
    /// `views` tensors end to end: the photo as it is searched, for a located garment
    /// the whole photo too, and with flip views each of those mirrored (their embeddings
    /// are averaged, see [`crate::embed::Embedder::embed_views`]).
    pub tensor: Vec<f32>,
    pub views: usize,
    /// Its side in pixels (snapshots may run larger than catalogue photos).
    pub size: u32,
    pub snapshot: bool,
    pub garment: Option<Crop>,
    /// The histogram of the garment's pixels, when the mask found enough of them.
    pub colour: Option<[f32; colour::BINS]>,
    /// The whole photo's unit embedding, from the garment mask's run, averaged in as one
    /// more view (one pass: see [`super::ONE_PASS`]).
    pub whole: Option<Vec<f32>>,
}

/// What the garment mask's run says about a photo.
#[derive(Default)]
struct Located {
    crop: Option<Crop>,
    colour: Option<[f32; colour::BINS]>,
    /// The photo's unit embedding (padded to a square), from the same run.
    embedding: Option<Vec<f32>>,
}

impl Engine {
    /// Embed a photo given as file bytes, squared, cut to its garment and viewed as `q`
    /// says (its `crop`, `resize`, `locate` and `flip`).
    pub fn embed_photo(&self, bytes: &[u8], q: &Query) -> Result<(Embedded, Timing)> {
        let t0 = Instant::now();
        let img = preprocess::decode(bytes)?;
        let t1 = Instant::now();
        let input = self.query_tensor(&img, q)?;
        let vector = self.embed_input(&input)?;
        let t2 = Instant::now();
        let timing = Timing {
            decode_ms: (t1 - t0).as_secs_f64() * 1e3,
            embed_ms: (t2 - t1).as_secs_f64() * 1e3,
            search_ms: 0.0,
            rerank_ms: 0.0,
        };
        Ok((input.embedded(vector), timing))
    }

    pub(super) fn embed_input(&self, t: &QueryInput) -> Result<Vec<f32>> {
        Ok(self.query_embedder().embed_views(
            &t.tensor,
            t.views,
            t.size,
            t.colour.as_ref(),
            t.whole.as_deref(),
        )?)
    }

    /// The model input for a decoded query photo: squared as a studio shot (padded) or a
    /// snapshot (cropped; at the model's snapshot size), a snapshot cut to the garment
    /// the model finds in it unless `q` gives a crop or says not to locate, and mirrored
    /// views added when `q.flip` (or, unset, [`super::FLIP_SNAPSHOTS`]) says.
    pub fn query_tensor(&self, img: &image::RgbImage, q: &Query) -> Result<QueryInput> {
        let spec = self.query_embedder().spec();
        let cropped;
        let src = match q.crop {
            Some(c) => {
                cropped = preprocess::apply_crop(img, c)?;
                &cropped
            }
            None => img,
        };
        let mode = q.resize.resolve(src);
        let snapshot = mode == ResizeMode::Crop;
        let size = spec.input_size(snapshot);
        let wanted = q.crop.is_none() && spec.mask.is_some() && q.locate.unwrap_or(snapshot);
        let whole = preprocess::tensor_at(src, spec, None, mode, size)?;
        let located = if wanted { self.located(src, size)? } else { Located::default() };
        let mut input = QueryInput {
            tensor: whole,
            views: 1,
            size,
            snapshot,
            garment: None,
            colour: located.colour,
            whole: None,
        };
        if let Some(garment) = located.crop {
            let cut = preprocess::apply_crop(src, garment)?;
            let mut tensor = preprocess::tensor_at(&cut, spec, None, ResizeMode::Crop, size)?;
            // A small garment is searched by its own view; a large one's view is averaged
            // with the whole photo's, which keeps what the mask missed (sleeves cut off
            // make a T-shirt a vest): in one pass, the mask's run's own embedding of it.
            let (w, h) = src.dimensions();
            let share = f64::from(garment.w) * f64::from(garment.h) / (f64::from(w) * f64::from(h));
            if share >= crate::garment::ALONE_BELOW {
                match located.embedding.filter(|_| q.one_pass.unwrap_or(super::ONE_PASS)) {
                    Some(e) => input.whole = Some(e),
                    None => {
                        tensor.extend_from_slice(&input.tensor);
                        input.views = 2;
                    }
                }
            }
            input.tensor = tensor;
            input.garment = Some(garment);
        }
        if q.flip.unwrap_or(snapshot && super::FLIP_SNAPSHOTS) {
            let len = crate::embed::input_len(size);
            let mirrored: Vec<f32> = input
                .tensor
                .chunks_exact(len)
                .flat_map(|view| preprocess::mirror(view, spec, size))
                .collect();
            input.tensor.extend(mirrored);
            input.views *= 2;
        }
        Ok(input)
    }

    /// The garment's square and colour in a photo, and the photo's embedding, from one
    /// run of the model over the whole photo (padded to a square, so that nothing is cut
    /// off; see [`crate::garment`]).
    fn located(&self, img: &image::RgbImage, size: u32) -> Result<Located> {
        let spec = self.query_embedder().spec();
        let tensor = preprocess::tensor_at(img, spec, None, ResizeMode::Pad, size)?;
        let Some((mask, embedding)) =
            self.query_embedder().garment_mask_and_embedding(&tensor, size)?
        else {
            return Ok(Located::default());
        };
        let (w, h) = img.dimensions();
        Ok(Located {
            embedding: Some(embedding),
            crop: crate::garment::locate(&mask.values, mask.rows, mask.cols, w, h),
            colour: colour::histogram_of_masked(
                &tensor,
                spec,
                size,
                &mask.values,
                mask.rows,
                mask.cols,
            ),
        })
    }

    /// Embed many photo files in batches (each as `q` says); one result per file,
    /// failures as messages.
    pub fn embed_files(
        &self,
        files: &[std::path::PathBuf],
        q: &Query,
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
                    self.query_tensor(&img, q).map_err(|e| e.to_string())
                })
                .collect();
            // One model run per input size in the chunk (studio shots and snapshots).
            let mut vectors: Vec<Option<std::result::Result<Vec<f32>, String>>> =
                vec![None; inputs.len()];
            for (i, input) in inputs.iter().enumerate() {
                if let Some(t) = input.as_ref().ok().filter(|t| !t.batched()) {
                    vectors[i] = Some(self.embed_input(t).map_err(|e| e.to_string()));
                }
            }
            for size in self.query_embedder().spec().input_sizes() {
                let rows: Vec<usize> = (0..inputs.len())
                    .filter(|&i| inputs[i].as_ref().is_ok_and(|t| t.size == size && t.batched()))
                    .collect();
                let batch: Vec<f32> = rows
                    .iter()
                    .filter_map(|&i| inputs[i].as_ref().ok())
                    .flat_map(|t| t.tensor.iter().copied())
                    .collect();
                match self.query_embedder().embed_tensors_at(&batch, rows.len(), size) {
                    Ok(v) => {
                        for (&i, v) in rows.iter().zip(v.chunks_exact(dim)) {
                            vectors[i] = Some(Ok(v.to_vec()));
                        }
                    }
                    Err(e) => rows.iter().for_each(|&i| vectors[i] = Some(Err(e.to_string()))),
                }
            }
            for (input, vector) in inputs.into_iter().zip(vectors) {
                out.push(input.and_then(|t| Ok(t.embedded(vector.ok_or("missing vector")??))));
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
        let (e, timing) = self.embed_photo(bytes, q)?;
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

impl QueryInput {
    /// One view whose colour comes from its own square: embedded with others of its size
    /// in one model run.
    fn batched(&self) -> bool {
        self.views == 1 && self.colour.is_none() && self.whole.is_none()
    }

    pub(super) fn embedded(self, vector: Vec<f32>) -> Embedded {
        Embedded {
            vector,
            snapshot: self.snapshot,
            garment: self.garment,
            garment_colour: self.colour.is_some(),
        }
    }
}
