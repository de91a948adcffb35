//! From file bytes to the model's input tensor: decode, orient, flatten, square, resize,
//! normalise.
//!
//! Decoding accepts what shops and phones produce (JPEG incl. CMYK, PNG incl. 16-bit and
//! alpha, WebP, GIF's first frame, BMP, TIFF), applies the EXIF orientation, and refuses
//! images whose size would exhaust memory. Transparent pixels are composited on white,
//! the colour of a studio background, so cut-out product shots look like catalogue shots.

use std::io::Cursor;

use fast_image_resize::{self as fr, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::model::{Layout, ModelSpec, ResizeMode};

/// Largest accepted width or height, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Largest decoded image, in bytes (a 16k x 8k RGBA photo).
pub const MAX_DECODED_BYTES: u64 = 512 * 1024 * 1024;
/// Largest accepted photo, in pixels (50 megapixels: a full-size DSLR shot), checked
/// from the file's header before anything is decoded.
pub const MAX_PIXELS: u64 = 50_000_000;
/// Memory all decodes in flight may hold together (decoded pixels and their RGB copy);
/// a decode waits for its share, so concurrent uploads or indexing threads cannot add
/// up past it.
pub const DECODE_BUDGET_BYTES: u64 = 768 * 1024 * 1024;

/// The shared decode budget: bytes reserved by decodes in flight.
struct Budget {
    used: std::sync::Mutex<u64>,
    freed: std::sync::Condvar,
}

static BUDGET: Budget = Budget { used: std::sync::Mutex::new(0), freed: std::sync::Condvar::new() };

/// Bytes of the budget held by one decode, given back when dropped.
struct Reservation(u64);

impl Budget {
    /// Wait until `bytes` (at most the whole budget) fit, then hold them.
    fn reserve(&'static self, bytes: u64) -> Reservation {
        let bytes = bytes.min(DECODE_BUDGET_BYTES);
        // The counter stays consistent whatever panicked while holding the lock.
        let mut used = self.used.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while *used + bytes > DECODE_BUDGET_BYTES {
            used = self.freed.wait(used).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *used += bytes;
        Reservation(bytes)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut used = BUDGET.used.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *used -= self.0;
        BUDGET.freed.notify_all();
    }
}

/// Bytes a decode of `bytes` holds at its peak (the decoded pixels and their RGB copy),
/// read from the file's header alone; 0 when the header cannot be read or the photo is
/// over the limits (the decode then fails before holding anything). A server counts this
/// against its memory budget before it lets a search decode.
pub fn decode_cost(bytes: &[u8]) -> u64 {
    let Ok(reader) = ImageReader::new(Cursor::new(bytes)).with_guessed_format() else {
        return 0;
    };
    let Ok(decoder) = reader.into_decoder() else { return 0 };
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if width > MAX_SIDE || height > MAX_SIDE || pixels > MAX_PIXELS {
        return 0;
    }
    decoder.total_bytes().saturating_add(pixels * 3)
}

/// Why a file could not become a model input.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("empty file")]
    Empty,
    #[error("not an image (unrecognised format)")]
    NotAnImage,
    #[error("unsupported image format: {0}")]
    Unsupported(String),
    #[error("image too large ({width}x{height}; limit {MAX_SIDE} px a side, 512 MB decoded)")]
    TooLarge { width: u32, height: u32 },
    #[error(
        "image too large ({width}x{height} is {} megapixels; limit {} megapixels)",
        (u64::from(*width) * u64::from(*height)).div_ceil(1_000_000),
        MAX_PIXELS / 1_000_000
    )]
    TooManyPixels { width: u32, height: u32 },
    #[error("image too large: {0} (limit {MAX_SIDE} px a side, 512 MB decoded)")]
    OverLimits(String),
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
    #[error("crop {x},{y},{w},{h} lies outside the {width}x{height} image")]
    CropOutside { x: u32, y: u32, w: u32, h: u32, width: u32, height: u32 },
    #[error("resize failed: {0}")]
    Resize(String),
}

/// A rectangle in pixels of the (oriented) photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl std::str::FromStr for Crop {
    type Err = String;
    /// Parse `x,y,w,h`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let nums: Result<Vec<f64>, _> = parts.iter().map(|p| p.parse::<f64>()).collect();
        match nums.as_deref() {
            Ok([x, y, w, h]) if [*x, *y, *w, *h].iter().all(|v| v.is_finite() && *v >= 0.0) => {
                if *w < 1.0 || *h < 1.0 {
                    return Err(format!("crop '{s}' has an empty width or height"));
                }
                Ok(Crop { x: *x as u32, y: *y as u32, w: *w as u32, h: *h as u32 })
            }
            _ => Err(format!("crop '{s}' must be four non-negative numbers x,y,w,h")),
        }
    }
}

/// How a query photo is made square: like the catalogue, or decided per photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryResize {
    /// Studio shots (light, plain border) are padded like the catalogue; snapshots with a
    /// busy background are centre-cropped, which finds the garment better (measured:
    /// street-photo precision@5 0.566 cropped vs 0.519 padded, Lite0).
    #[default]
    Auto,
    Pad,
    Crop,
}

impl std::str::FromStr for QueryResize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "pad" => Ok(Self::Pad),
            "crop" => Ok(Self::Crop),
            other => Err(format!("unknown resize mode '{other}': use auto, pad or crop")),
        }
    }
}

impl QueryResize {
    /// The concrete mode for `img`.
    pub fn resolve(self, img: &RgbImage) -> ResizeMode {
        match self {
            QueryResize::Pad => ResizeMode::Pad,
            QueryResize::Crop => ResizeMode::Crop,
            QueryResize::Auto if has_studio_border(img) => ResizeMode::Pad,
            QueryResize::Auto => ResizeMode::Crop,
        }
    }
}

/// True when nearly all of the photo's outermost pixels are near-white, as in a product
/// shot on a studio background.
pub fn has_studio_border(img: &RgbImage) -> bool {
    let (w, h) = img.dimensions();
    if w < 3 || h < 3 {
        return true;
    }
    let light = |x: u32, y: u32| img.get_pixel(x, y).0.iter().all(|c| *c >= 225);
    let mut total = 0u32;
    let mut white = 0u32;
    for x in 0..w {
        for y in [0, h - 1] {
            total += 1;
            white += u32::from(light(x, y));
        }
    }
    for y in 1..h - 1 {
        for x in [0, w - 1] {
            total += 1;
            white += u32::from(light(x, y));
        }
    }
    white * 10 >= total * 9
}

/// Decode file bytes into an upright 8-bit RGB image.
pub fn decode(bytes: &[u8]) -> Result<RgbImage, PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PreprocessError::Corrupt(e.to_string()))?;
    match reader.format() {
        None => return Err(PreprocessError::NotAnImage),
        Some(image::ImageFormat::Jpeg) if !jpeg_is_complete(bytes) => {
            // The JPEG decoder fills a cut-off file with grey instead of failing.
            return Err(PreprocessError::Corrupt(
                "truncated JPEG (no end-of-image marker after the last scan)".into(),
            ));
        }
        Some(_) => {}
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(map_image_error)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(PreprocessError::Corrupt("zero-sized image".into()));
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(PreprocessError::TooLarge { width, height });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_PIXELS {
        return Err(PreprocessError::TooManyPixels { width, height });
    }
    // The decoded buffer and the RGB copy made of it.
    let _held = BUDGET.reserve(decoder.total_bytes().saturating_add(pixels * 3));
    // A broken EXIF block must not cost the photo: default to upright.
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        image::ImageError::Limits(_) => PreprocessError::TooLarge { width, height },
        other => map_image_error(other),
    })?;
    img.apply_orientation(orientation);
    Ok(flatten_on_white(img))
}

/// A complete JPEG has its end-of-image marker (FF D9) after the start of its last scan
/// (FF DA); inside entropy-coded data FF is always stuffed, so the markers cannot appear
/// by chance there.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w[0] == 0xFF && w[1] == marker);
    match (last(0xDA), last(0xD9)) {
        (Some(sos), Some(eoi)) => eoi > sos,
        _ => false,
    }
}

fn map_image_error(e: image::ImageError) -> PreprocessError {
    match e {
        image::ImageError::Unsupported(u) => PreprocessError::Unsupported(u.to_string()),
        image::ImageError::Limits(l) => PreprocessError::OverLimits(l.to_string()),
        other => PreprocessError::Corrupt(other.to_string()),
    }
}

/// Drop alpha by compositing on white; any depth or colour model becomes RGB8.
fn flatten_on_white(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (src, dst) in rgba.pixels().zip(out.pixels_mut()) {
        let a = u32::from(src[3]);
        for c in 0..3 {
            let v = (u32::from(src[c]) * a + 255 * (255 - a) + 127) / 255;
            dst[c] = v as u8;
        }
    }
    out
}

/// Cut `crop` out of `img`, clamped to its bounds.
pub fn apply_crop(img: &RgbImage, crop: Crop) -> Result<RgbImage, PreprocessError> {
    let (width, height) = img.dimensions();
    let outside =
        PreprocessError::CropOutside { x: crop.x, y: crop.y, w: crop.w, h: crop.h, width, height };
    if crop.x >= width || crop.y >= height {
        return Err(outside);
    }
    let w = crop.w.min(width - crop.x);
    let h = crop.h.min(height - crop.y);
    if w == 0 || h == 0 {
        return Err(outside);
    }
    Ok(image::imageops::crop_imm(img, crop.x, crop.y, w, h).to_image())
}

/// Make `img` a `size` x `size` RGB8 square as the model's resize mode says.
pub fn square(img: &RgbImage, size: u32, mode: ResizeMode) -> Result<RgbImage, PreprocessError> {
    let (w, h) = img.dimensions();
    let src = fr::images::ImageRef::new(w, h, img.as_raw(), PixelType::U8x3)
        .map_err(|e| PreprocessError::Resize(e.to_string()))?;
    let alg = ResizeAlg::Convolution(fr::FilterType::CatmullRom);
    let mut resizer = Resizer::new();
    match mode {
        ResizeMode::Crop => {
            let side = w.min(h);
            let opts = ResizeOptions::new().resize_alg(alg).crop(
                f64::from((w - side) / 2),
                f64::from((h - side) / 2),
                f64::from(side),
                f64::from(side),
            );
            let mut dst = fr::images::Image::new(size, size, PixelType::U8x3);
            resizer
                .resize(&src, &mut dst, &opts)
                .map_err(|e| PreprocessError::Resize(e.to_string()))?;
            RgbImage::from_raw(size, size, dst.into_vec())
                .ok_or_else(|| PreprocessError::Resize("buffer size mismatch".into()))
        }
        ResizeMode::Pad => {
            // Fit the long side to `size`, then centre on white: same as padding to a
            // square first, without resizing the padding.
            let long = w.max(h) as f64;
            let nw = ((w as f64 * size as f64 / long).round() as u32).clamp(1, size);
            let nh = ((h as f64 * size as f64 / long).round() as u32).clamp(1, size);
            let mut dst = fr::images::Image::new(nw, nh, PixelType::U8x3);
            resizer
                .resize(&src, &mut dst, &ResizeOptions::new().resize_alg(alg))
                .map_err(|e| PreprocessError::Resize(e.to_string()))?;
            let fitted = RgbImage::from_raw(nw, nh, dst.into_vec())
                .ok_or_else(|| PreprocessError::Resize("buffer size mismatch".into()))?;
            let mut canvas = RgbImage::from_pixel(size, size, image::Rgb([255, 255, 255]));
            image::imageops::replace(
                &mut canvas,
                &fitted,
                i64::from((size - nw) / 2),
                i64::from((size - nh) / 2),
            );
            Ok(canvas)
        }
    }
}

/// Write the normalised tensor of a `size` x `size` square into `out` (len 3*size*size).
pub fn normalise_into(sq: &RgbImage, spec: &ModelSpec, out: &mut [f32]) {
    let n = (sq.width() * sq.height()) as usize;
    debug_assert_eq!(out.len(), 3 * n);
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * spec.std[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| spec.mean[c] / spec.std[c]);
    let raw = sq.as_raw();
    match spec.layout {
        Layout::Nchw => {
            let (r, rest) = out.split_at_mut(n);
            let (g, b) = rest.split_at_mut(n);
            for (i, px) in raw.chunks_exact(3).enumerate() {
                r[i] = f32::from(px[0]) * scale[0] - shift[0];
                g[i] = f32::from(px[1]) * scale[1] - shift[1];
                b[i] = f32::from(px[2]) * scale[2] - shift[2];
            }
        }
        Layout::Nhwc => {
            for (i, v) in raw.iter().enumerate() {
                let c = i % 3;
                out[i] = f32::from(*v) * scale[c] - shift[c];
            }
        }
    }
}

/// The whole path for one photo: optional crop, square, normalise.
pub fn tensor(
    img: &RgbImage,
    spec: &ModelSpec,
    crop: Option<Crop>,
) -> Result<Vec<f32>, PreprocessError> {
    tensor_as(img, spec, crop, spec.resize)
}

/// [`tensor`] with an explicit resize mode.
pub fn tensor_as(
    img: &RgbImage,
    spec: &ModelSpec,
    crop: Option<Crop>,
    mode: ResizeMode,
) -> Result<Vec<f32>, PreprocessError> {
    tensor_at(img, spec, crop, mode, spec.size)
}

/// [`tensor_as`] at an input side of `size` pixels (the model's size for snapshots).
pub fn tensor_at(
    img: &RgbImage,
    spec: &ModelSpec,
    crop: Option<Crop>,
    mode: ResizeMode,
    size: u32,
) -> Result<Vec<f32>, PreprocessError> {
    let cropped;
    let src = match crop {
        Some(c) => {
            cropped = apply_crop(img, c)?;
            &cropped
        }
        None => img,
    };
    let sq = square(src, size, mode)?;
    let mut out = vec![0.0; 3 * (size * size) as usize];
    normalise_into(&sq, spec, &mut out);
    Ok(out)
}

/// The left-right mirror of a normalised `size` x `size` tensor (a second view of a
/// snapshot: a garment photographed the other way round is the same garment).
pub fn mirror(tensor: &[f32], spec: &ModelSpec, size: u32) -> Vec<f32> {
    let side = size as usize;
    let mut out = tensor.to_vec();
    match spec.layout {
        Layout::Nchw => out.chunks_exact_mut(side).for_each(<[f32]>::reverse),
        Layout::Nhwc => {
            for row in out.chunks_exact_mut(3 * side) {
                for x in 0..side / 2 {
                    let (a, b) = (3 * x, 3 * (side - 1 - x));
                    for c in 0..3 {
                        row.swap(a + c, b + c);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(layout: Layout) -> ModelSpec {
        ModelSpec {
            name: "t".into(),
            file: "t.onnx".into(),
            input: "i".into(),
            output: "o".into(),
            layout,
            size: 4,
            resize: ResizeMode::Pad,
            mean: [0.5, 0.5, 0.5],
            std: [0.5, 0.25, 0.5],
            dim: 2,
            query_size: None,
            heads: None,
            mask: None,
            close_match: None,
        }
    }

    #[test]
    fn a_mirrored_tensor_is_the_mirrored_photos_tensor() {
        let img = RgbImage::from_fn(4, 4, |x, y| image::Rgb([(x * 60) as u8, (y * 60) as u8, 7]));
        let flipped = image::imageops::flip_horizontal(&img);
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let spec = spec(layout);
            let mut t = vec![0.0; 48];
            normalise_into(&img, &spec, &mut t);
            let mut want = vec![0.0; 48];
            normalise_into(&flipped, &spec, &mut want);
            assert_ne!(t, want);
            assert_eq!(mirror(&t, &spec, 4), want, "{layout:?}");
            assert_eq!(mirror(&mirror(&t, &spec, 4), &spec, 4), t);
        }
    }

    #[test]
    fn crop_parses_and_rejects_garbage() {
        assert_eq!("1,2,3,4".parse::<Crop>().unwrap(), Crop { x: 1, y: 2, w: 3, h: 4 });
        assert!("1,2,3".parse::<Crop>().is_err());
        assert!("1,2,0,4".parse::<Crop>().is_err());
        assert!("a,b,c,d".parse::<Crop>().is_err());
        assert!("-1,2,3,4".parse::<Crop>().is_err());
    }

    #[test]
    fn pad_keeps_aspect_and_fills_white() {
        let img = RgbImage::from_pixel(10, 20, image::Rgb([0, 0, 0]));
        let sq = square(&img, 8, ResizeMode::Pad).unwrap();
        assert_eq!(sq.dimensions(), (8, 8));
        assert_eq!(sq.get_pixel(0, 4).0, [255, 255, 255], "left margin is white");
        assert_eq!(sq.get_pixel(4, 4).0, [0, 0, 0], "centre is the photo");
        let sq = square(&img, 8, ResizeMode::Crop).unwrap();
        assert_eq!(sq.get_pixel(0, 4).0, [0, 0, 0], "crop leaves no margin");
    }

    #[test]
    fn a_decompression_bomb_is_refused_from_its_header() {
        // 8000 x 8000 RGBA (256 MB decoded) in a 249 KB file; 64 megapixels.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/hostile/bomb.png");
        let bytes = std::fs::read(path).unwrap();
        match decode(&bytes) {
            Err(e @ PreprocessError::TooManyPixels { width: 8000, height: 8000 }) => {
                assert!(e.to_string().contains("64 megapixels; limit 50"), "{e}");
            }
            other => panic!("expected a refusal by size, got {:?}", other.map(|i| i.dimensions())),
        }
    }

    #[test]
    fn decodes_wait_for_their_share_of_the_memory_budget() {
        let first = BUDGET.reserve(DECODE_BUDGET_BYTES * 2 / 3);
        let got = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = got.clone();
        let second = std::thread::spawn(move || {
            let held = BUDGET.reserve(DECODE_BUDGET_BYTES * 2 / 3);
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            drop(held);
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!got.load(std::sync::atomic::Ordering::SeqCst), "both fit in the budget at once");
        drop(first);
        second.join().unwrap();
        assert!(got.load(std::sync::atomic::Ordering::SeqCst));
        // More than the whole budget asks for the whole budget, and still proceeds.
        drop(BUDGET.reserve(DECODE_BUDGET_BYTES * 4));
    }

    #[test]
    fn normalise_layouts_agree() {
        let mut sq = RgbImage::new(4, 4);
        sq.put_pixel(1, 0, image::Rgb([255, 0, 128]));
        let mut chw = vec![0.0; 48];
        let mut hwc = vec![0.0; 48];
        normalise_into(&sq, &spec(Layout::Nchw), &mut chw);
        normalise_into(&sq, &spec(Layout::Nhwc), &mut hwc);
        // pixel 1: r = (1 - .5)/.5 = 1, g = (0 - .5)/.25 = -2
        assert!((chw[1] - 1.0).abs() < 1e-6 && (chw[16 + 1] + 2.0).abs() < 1e-6);
        for c in 0..3 {
            for p in 0..16 {
                assert!((chw[c * 16 + p] - hwc[p * 3 + c]).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn alpha_is_composited_on_white() {
        let mut rgba = image::RgbaImage::from_pixel(2, 1, image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, image::Rgba([0, 0, 0, 255]));
        let rgb = flatten_on_white(DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [0, 0, 0]);
    }

    #[test]
    fn crop_outside_is_an_error() {
        let img = RgbImage::new(10, 10);
        assert!(apply_crop(&img, Crop { x: 10, y: 0, w: 5, h: 5 }).is_err());
        assert_eq!(apply_crop(&img, Crop { x: 8, y: 8, w: 5, h: 5 }).unwrap().dimensions(), (2, 2));
    }

    #[test]
    fn auto_resize_pads_studio_shots_and_crops_snapshots() {
        let mut studio = RgbImage::from_pixel(30, 40, image::Rgb([255, 255, 255]));
        for x in 10..20 {
            for y in 5..35 {
                studio.put_pixel(x, y, image::Rgb([20, 40, 200]));
            }
        }
        assert_eq!(QueryResize::Auto.resolve(&studio), ResizeMode::Pad);
        let snapshot = RgbImage::from_pixel(30, 40, image::Rgb([120, 90, 60]));
        assert_eq!(QueryResize::Auto.resolve(&snapshot), ResizeMode::Crop);
        assert_eq!(QueryResize::Pad.resolve(&snapshot), ResizeMode::Pad);
        assert!("sideways".parse::<QueryResize>().is_err());
    }

    #[test]
    fn empty_and_garbage_bytes_are_named() {
        assert!(matches!(decode(b""), Err(PreprocessError::Empty)));
        assert!(matches!(decode(b"hello, not an image"), Err(PreprocessError::NotAnImage)));
    }
}
