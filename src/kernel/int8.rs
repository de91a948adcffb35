//! Rows quantised to i8 codes, a quarter of the f32 memory a scan reads.

/// Rows quantised to i8 with one scale per row: `x ≈ scale * code`.
#[derive(Debug, Default, Clone)]
pub struct Int8Rows {
    pub codes: Vec<i8>,
    pub scales: Vec<f32>,
}

impl Int8Rows {
    /// Symmetric per-row quantisation: the largest magnitude of a row maps to 127.
    pub fn quantise(matrix: &[f32], dim: usize) -> Self {
        let mut out = Int8Rows { codes: Vec::with_capacity(matrix.len()), scales: Vec::new() };
        for row in matrix.chunks_exact(dim) {
            out.push(row);
        }
        out
    }

    /// Quantise one more row.
    pub fn push(&mut self, row: &[f32]) {
        let max = row.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        self.scales.push(scale);
        self.codes.extend(row.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8));
    }
}
