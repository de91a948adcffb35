//! Pure-Rust tract backend: slower, but needs nothing beyond the binary.

use tract_onnx::prelude::*;

use super::{EmbedError, Mask, Outputs};
use crate::model::{ModelSpec, ResolvedModel};

type Plan = Arc<TypedRunnableModel>;
/// One image's embedding and, when asked for, its garment mask.
type One = (Vec<f32>, Option<Mask>);

pub(super) struct TractBackend {
    // tract is fastest at a fixed batch of one and a fixed input size (a symbolic
    // dimension halves its speed), so there is one plan per input size the model runs at
    // (catalogue photos, snapshots), and images run one by one across the rayon pool.
    plans: Vec<(u32, Plan)>,
}

impl TractBackend {
    pub(super) fn load(model: &ResolvedModel) -> Result<Self, EmbedError> {
        let spec = &model.spec;
        let err = |e: TractError| EmbedError::ModelLoad {
            path: model.path.clone(),
            message: format!("{e:#}"),
        };
        let mut plans = Vec::new();
        for size in spec.input_sizes() {
            let mut m = tract_onnx::onnx().model_for_path(&model.path).map_err(err)?;
            let mut outlets = Vec::new();
            for name in std::iter::once(&spec.output).chain(spec.mask.as_ref()) {
                outlets.push(m.find_outlet_label(name).ok_or_else(|| EmbedError::ModelLoad {
                    path: model.path.clone(),
                    message: format!("the model has no output named '{name}'"),
                })?);
            }
            m.select_output_outlets(&outlets).map_err(err)?;
            let plan = m
                .with_input_fact(0, f32::fact(super::input_shape(spec, 1, size)).into())
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
                .map_err(err)?;
            plans.push((size, plan));
        }
        Ok(Self { plans })
    }

    pub(super) fn run(
        &self,
        spec: &ModelSpec,
        batch: &[f32],
        n: usize,
        size: u32,
        want_mask: bool,
    ) -> Result<Outputs, EmbedError> {
        use rayon::prelude::*;
        let plan = self
            .plans
            .iter()
            .find(|(s, _)| *s == size)
            .map(|(_, p)| p)
            .ok_or_else(|| EmbedError::Inference(format!("no plan for {size} px inputs")))?;
        let shape = super::input_shape(spec, 1, size);
        let per = batch.len() / n;
        let fail = |e: TractError| EmbedError::Inference(format!("{e:#}"));
        let outs: Result<Vec<One>, EmbedError> = batch
            .par_chunks_exact(per)
            .map(|one| {
                let t = Tensor::from_shape(&shape, one).map_err(fail)?;
                let out = plan.run(tvec!(t.into())).map_err(fail)?;
                let first = out
                    .first()
                    .ok_or_else(|| EmbedError::Inference("model returned no output".into()))?;
                let view = first.to_plain_array_view::<f32>().map_err(fail)?;
                let embedding = view.iter().copied().collect();
                let mask = match out.get(1).filter(|_| want_mask) {
                    Some(m) => {
                        let dims: Vec<i64> = m.shape().iter().map(|&d| d as i64).collect();
                        let values: Vec<f32> =
                            m.to_plain_array_view::<f32>().map_err(fail)?.iter().copied().collect();
                        Some(super::mask_of(&dims, &values)?)
                    }
                    None => None,
                };
                Ok((embedding, mask))
            })
            .collect();
        let outs = outs?;
        let mask = outs.first().and_then(|(_, m)| m.clone());
        Ok(Outputs { embedding: outs.into_iter().flat_map(|(e, _)| e).collect(), mask })
    }
}
