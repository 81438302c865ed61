//! The Python face of the native core (`crnas._core`): thin wrappers that convert arguments and
//! errors and release the GIL around tensor work. No maths lives here.

use crate::error::CrnasError;
use crate::mdconv::{self, Backend};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3_tch::PyTensor;

impl From<CrnasError> for PyErr {
    fn from(err: CrnasError) -> PyErr {
        match &err {
            CrnasError::Value { .. } | CrnasError::Json(_) => PyValueError::new_err(err.to_string()),
            CrnasError::Type { .. } => PyTypeError::new_err(err.to_string()),
            CrnasError::Torch(_) => PyRuntimeError::new_err(err.to_string()),
        }
    }
}

/// Forward of the fused multi-dilation convolution (see `crnas.ops.multi_dilation_conv2d`).
#[pyfunction]
#[pyo3(signature = (input, weight, mix, bias, dilations, stride, groups, backend = "auto"))]
#[allow(clippy::too_many_arguments)]
fn mdconv_forward(
    py: Python<'_>,
    input: PyTensor,
    weight: PyTensor,
    mix: PyTensor,
    bias: Option<PyTensor>,
    dilations: Vec<i64>,
    stride: i64,
    groups: i64,
    backend: &str,
) -> PyResult<PyTensor> {
    let backend: Backend = backend.parse()?;
    let out = py.allow_threads(move || {
        mdconv::forward(&input, &weight, &mix, bias.as_deref(), &dilations, stride, groups, backend)
    })?;
    Ok(PyTensor(out))
}

/// Backward of the fused multi-dilation convolution: `(grad_input, grad_weight, grad_mix)`;
/// entries not selected by `output_mask` are zero-size tensors.
#[pyfunction]
#[pyo3(signature = (grad, input, weight, mix, dilations, stride, groups, output_mask, backend = "auto"))]
#[allow(clippy::too_many_arguments)]
fn mdconv_backward(
    py: Python<'_>,
    grad: PyTensor,
    input: PyTensor,
    weight: PyTensor,
    mix: PyTensor,
    dilations: Vec<i64>,
    stride: i64,
    groups: i64,
    output_mask: [bool; 3],
    backend: &str,
) -> PyResult<(PyTensor, PyTensor, PyTensor)> {
    let backend: Backend = backend.parse()?;
    let (dx, dw, dm) = py.allow_threads(move || {
        mdconv::backward(&grad, &input, &weight, &mix, &dilations, stride, groups, output_mask, backend)
    })?;
    Ok((PyTensor(dx), PyTensor(dw), PyTensor(dm)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__torch_version__", env!("CRNAS_TORCH_VERSION"))?;
    m.add_function(wrap_pyfunction!(mdconv_forward, m)?)?;
    m.add_function(wrap_pyfunction!(mdconv_backward, m)?)?;
    Ok(())
}
