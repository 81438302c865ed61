//! crnas native core: the fused multi-dilation convolution ([`mdconv`]), with thin Python
//! bindings in [`python`] (`crnas._core`).

pub mod error;
pub mod mdconv;
pub mod parallel;
mod python;

pub use error::{CrnasError, Result};

use pyo3::prelude::*;

#[pymodule]
#[pyo3(name = "_core")]
fn core_module(py: Python<'_>, m: &Bound<'_, PyModule>) -> PyResult<()> {
    // libtorch must be initialised by torch's Python module before tensors cross the boundary.
    py.import("torch")?;
    python::register(m)
}
