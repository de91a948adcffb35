//! Pure-Rust tract backend: slower, but needs nothing beyond the binary.

use tract_onnx::prelude::*;

use super::EmbedError;
use crate::model::{ModelSpec, ResolvedModel};

type Plan = Arc<TypedRunnableModel>;

pub(super) struct TractBackend {
    // tract is fastest at a fixed batch of one (a symbolic batch halves its speed), so
    // images run one by one, in parallel across the rayon pool.
    plan: Plan,
}

impl TractBackend {
    pub(super) fn load(model: &ResolvedModel) -> Result<Self, EmbedError> {
        let spec = &model.spec;
        let err = |e: TractError| EmbedError::ModelLoad {
            path: model.path.clone(),
            message: format!("{e:#}"),
        };
        let shape = super::input_shape(spec, 1);
        let mut m = tract_onnx::onnx().model_for_path(&model.path).map_err(err)?;
        let output = m.find_outlet_label(&spec.output).ok_or_else(|| EmbedError::ModelLoad {
            path: model.path.clone(),
            message: format!("the model has no output named '{}'", spec.output),
        })?;
        m.select_output_outlets(&[output]).map_err(err)?;
        let plan = m
            .with_input_fact(0, f32::fact(shape).into())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(err)?;
        Ok(Self { plan })
    }

    pub(super) fn run(
        &self,
        spec: &ModelSpec,
        batch: &[f32],
        n: usize,
    ) -> Result<Vec<f32>, EmbedError> {
        use rayon::prelude::*;
        let shape = super::input_shape(spec, 1);
        let per = batch.len() / n;
        let outs: Result<Vec<Vec<f32>>, EmbedError> = batch
            .par_chunks_exact(per)
            .map(|one| {
                let t = Tensor::from_shape(&shape, one)
                    .map_err(|e| EmbedError::Inference(format!("{e:#}")))?;
                let out = self
                    .plan
                    .run(tvec!(t.into()))
                    .map_err(|e| EmbedError::Inference(format!("{e:#}")))?;
                let first = out
                    .first()
                    .ok_or_else(|| EmbedError::Inference("model returned no output".into()))?;
                let view = first
                    .to_plain_array_view::<f32>()
                    .map_err(|e| EmbedError::Inference(format!("{e:#}")))?;
                Ok(view.iter().copied().collect())
            })
            .collect();
        Ok(outs?.concat())
    }
}
