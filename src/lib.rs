//! crnas native core: the architecture spec ([`arch`]), the FLOPs accountant ([`flops`]), the
//! search-space samplers ([`space`]) and the fused multi-dilation convolution ([`mdconv`]), with
//! thin Python bindings in [`python`] (`crnas._core`).

pub mod arch;
pub mod error;
pub mod flops;
pub mod mdconv;
pub mod parallel;
pub mod space;
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
