//! ONNX Runtime backend: the fast path, loaded from a shared library at run time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;

use super::{EmbedError, runtime};
use crate::model::{ModelSpec, ResolvedModel};

/// ONNX Runtime can be loaded once per process; every later model shares it.
static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

fn environment() -> Result<&'static ort::environment::Environment, EmbedError> {
    let lib = runtime::find_onnxruntime().ok_or(EmbedError::RuntimeMissing)?;
    let env = ENVIRONMENT.get_or_init(|| {
        ort::init_from(&lib)
            .map_err(|e| e.to_string())
            .and_then(|b| b.with_name("lookalike").build().map_err(|e| e.to_string()))
    });
    env.as_ref().map_err(|message| EmbedError::RuntimeLoad { path: lib, message: message.clone() })
}

/// One output of a run: its shape and its values.
type Output = (Vec<i64>, Vec<f32>);

pub(super) struct OrtBackend {
    /// `Session::run` takes `&mut self`: each session serves one run at a time, so there
    /// are as many as runs may go on at once ([`super::Parallelism`]).
    sessions: Vec<Mutex<Session>>,
    /// Where the next run starts looking for a free session.
    next: AtomicUsize,
}

impl OrtBackend {
    pub(super) fn load(model: &ResolvedModel, par: super::Parallelism) -> Result<Self, EmbedError> {
        let sessions = (0..par.sessions.max(1))
            .map(|_| Self::session(model, par.threads.max(1)).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(Self { sessions, next: AtomicUsize::new(0) })
    }

    fn session(model: &ResolvedModel, threads: usize) -> Result<Session, EmbedError> {
        let env = environment()?;
        let load_err = |e: &dyn std::fmt::Display| EmbedError::ModelLoad {
            path: model.path.clone(),
            message: e.to_string(),
        };
        let session = Session::builder(env)
            .map_err(|e| load_err(&e))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| load_err(&e))?
            .with_intra_threads(threads)
            .map_err(|e| load_err(&e))?
            // Spinning workers would keep both cores busy after each run, starving the
            // decode threads while indexing and the search scan right after a query.
            .with_intra_op_spinning(false)
            .map_err(|e| load_err(&e))?
            .commit_from_file(&model.path)
            .map_err(|e| load_err(&e))?;
        if !session.outputs().iter().any(|o| o.name() == model.spec.output) {
            return Err(load_err(&format!(
                "the model has no output named '{}'",
                model.spec.output
            )));
        }
        if !session.inputs().iter().any(|i| i.name() == model.spec.input) {
            return Err(load_err(&format!("the model has no input named '{}'", model.spec.input)));
        }
        if let Some(mask) = &model.spec.mask
            && !session.outputs().iter().any(|o| o.name() == mask)
        {
            return Err(load_err(&format!("the model has no mask output named '{mask}'")));
        }
        Ok(session)
    }

    /// A free session, or (all busy) the next one's turn.
    fn session_for_run(&self) -> Result<std::sync::MutexGuard<'_, Session>, EmbedError> {
        let n = self.sessions.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Ok(free) = self.sessions[(start + i) % n].try_lock() {
                return Ok(free);
            }
        }
        self.sessions[start]
            .lock()
            .map_err(|_| EmbedError::Inference("inference session poisoned".into()))
    }

    pub(super) fn run(
        &self,
        spec: &ModelSpec,
        batch: &[f32],
        n: usize,
        size: u32,
        want_mask: bool,
    ) -> Result<super::Outputs, EmbedError> {
        let mask_name = spec.mask.as_deref().filter(|_| want_mask);
        let mut names = vec![spec.output.as_str()];
        names.extend(mask_name);
        let mut outputs = self.outputs(spec, batch, n, size, &names)?.into_iter();
        let (_, embedding) = outputs.next().unwrap_or_default();
        let mask = match outputs.next() {
            Some((shape, data)) => Some(super::mask_of(&shape, &data)?),
            None => None,
        };
        Ok(super::Outputs { embedding, mask })
    }

    pub(super) fn named_outputs(
        &self,
        spec: &ModelSpec,
        tensor: &[f32],
        size: u32,
        names: &[&str],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let outputs = self.outputs(spec, tensor, 1, size, names)?;
        Ok(outputs.into_iter().map(|(_, data)| data).collect())
    }

    /// One output of one input tensor, with its shape.
    pub(super) fn shaped_output(
        &self,
        spec: &ModelSpec,
        tensor: &[f32],
        size: u32,
        name: &str,
    ) -> Result<(Vec<i64>, Vec<f32>), EmbedError> {
        let mut outputs = self.outputs(spec, tensor, 1, size, &[name])?;
        outputs.pop().ok_or_else(|| EmbedError::Inference(format!("no output '{name}'")))
    }

    /// Runs the model once on `n` tensors and copies out the outputs named `names`, in
    /// that order, each with its shape: the one place the session is locked and run.
    fn outputs(
        &self,
        spec: &ModelSpec,
        batch: &[f32],
        n: usize,
        size: u32,
        names: &[&str],
    ) -> Result<Vec<Output>, EmbedError> {
        let shape = super::input_shape(spec, n, size);
        let err = |e: ort::Error| EmbedError::Inference(e.to_string());
        let input = TensorRef::from_array_view((shape, batch)).map_err(err)?;
        let mut session = self.session_for_run()?;
        let outputs = session.run(ort::inputs![spec.input.as_str() => input]).map_err(err)?;
        names
            .iter()
            .map(|name| {
                let value = outputs
                    .get(*name)
                    .ok_or_else(|| EmbedError::Inference(format!("no output '{name}'")))?;
                let (shape, data) = value.try_extract_tensor::<f32>().map_err(err)?;
                Ok((shape.to_vec(), data.to_vec()))
            })
            .collect()
    }
}
