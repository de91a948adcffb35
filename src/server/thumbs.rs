//! Product thumbnails: made on first request, kept in a bounded in-memory cache.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use axum::body::Bytes;

use crate::preprocess;

/// Longest side of a thumbnail, in pixels.
pub const SIDE: u32 = 256;

/// A FIFO-bounded map from photo hash to JPEG bytes.
pub(super) struct Cache {
    cap: usize,
    inner: Mutex<(HashMap<String, Bytes>, VecDeque<String>)>,
}

impl Cache {
    pub(super) fn new(cap: usize) -> Self {
        Self { cap, inner: Mutex::new((HashMap::new(), VecDeque::new())) }
    }

    pub(super) fn get(&self, key: &str) -> Option<Bytes> {
        self.inner.lock().ok()?.0.get(key).cloned()
    }

    pub(super) fn put(&self, key: String, value: Bytes) {
        let Ok(mut g) = self.inner.lock() else { return };
        let (map, order) = &mut *g;
        if map.insert(key.clone(), value).is_none() {
            order.push_back(key);
        }
        while order.len() > self.cap {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }
}

/// Decode the photo (EXIF-upright), shrink it to fit `SIDE`, encode as JPEG.
pub(super) fn make(bytes: &[u8]) -> Result<Bytes, String> {
    let img = preprocess::decode(bytes).map_err(|e| e.to_string())?;
    let (w, h) = img.dimensions();
    let scale = (SIDE as f64 / w.max(h) as f64).min(1.0);
    let (nw, nh) =
        (((w as f64 * scale).round() as u32).max(1), ((h as f64 * scale).round() as u32).max(1));
    let small = if (nw, nh) == (w, h) {
        img
    } else {
        image::imageops::resize(&img, nw, nh, image::imageops::FilterType::Triangle)
    };
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82);
    small.write_with_encoder(enc).map_err(|e| e.to_string())?;
    Ok(Bytes::from(out))
}
