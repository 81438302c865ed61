//! The Python face of the native core (`crnas._core`): thin wrappers that convert arguments and
//! errors and release the GIL around tensor work. No maths lives here.

use crate::arch::{Architecture, Family, DILATIONS, PAPER_ARCHITECTURES};
use crate::error::{CrnasError, Result};
use crate::flops::{self, Convention, Detector, Report};
use crate::mdconv::{self, Backend};
use crate::space::{self, Budget, Sampling, StageSpace, MACS_INPUT_SIZE};
use numpy::{IntoPyArray, PyArray1};
use pyo3::basic::CompareOp;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};
use pyo3::IntoPyObjectExt;
use pyo3_tch::PyTensor;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

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

/// Non-negative integers from Python, with the argument named in the error.
fn counts(arg: &str, values: &[i64]) -> Result<Vec<usize>> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| usize::try_from(v).map_err(|_| CrnasError::value(format!("{arg}[{i}]"), "a non-negative integer", v)))
        .collect()
}

fn size2(arg: &str, value: (i64, i64)) -> Result<(usize, usize)> {
    match (usize::try_from(value.0), usize::try_from(value.1)) {
        (Ok(h), Ok(w)) => Ok((h, w)),
        _ => Err(CrnasError::value(arg, "(H, W) with positive integers", format!("({}, {})", value.0, value.1))),
    }
}

/// A width multiplier from Python: a float or int, never a bool.
struct Width(f64);

impl<'py> FromPyObject<'py> for Width {
    fn extract_bound(ob: &Bound<'py, PyAny>) -> PyResult<Self> {
        if ob.is_instance_of::<pyo3::types::PyBool>() {
            return Err(CrnasError::type_("width", "a float", "a bool").into());
        }
        Ok(Width(ob.extract::<f64>().map_err(|_| CrnasError::type_("width", "a float", ob.get_type()))?))
    }
}

/// A CR-NAS backbone: family, blocks per stage [C2, C3, C4, C5], one dilation per block, width.
///
/// The single source of truth for models, FLOPs and sampling.
#[pyclass(name = "Architecture", module = "crnas._core", frozen)]
#[derive(Clone)]
pub struct PyArchitecture(pub Architecture);

#[pymethods]
impl PyArchitecture {
    #[new]
    #[pyo3(signature = (family, blocks, dilations = None, width = None))]
    fn new(family: &str, blocks: Vec<i64>, dilations: Option<Vec<i64>>, width: Option<Width>) -> PyResult<Self> {
        let dilations = dilations.map(|d| counts("dilations", &d)).transpose()?;
        let width = width.map_or(1.0, |w| w.0);
        Ok(PyArchitecture(Architecture::new(Family::parse(family)?, counts("blocks", &blocks)?, dilations, width)?))
    }

    /// torchvision's reference network of a family (all dilations 1).
    #[classmethod]
    fn baseline(_cls: &Bound<'_, PyType>, family: &str) -> PyResult<Self> {
        Ok(PyArchitecture(Architecture::baseline(Family::parse(family)?)))
    }

    /// An architecture published in the paper: ``"scr_resnet50"`` or ``"cr_resnet50"``.
    #[classmethod]
    fn paper(_cls: &Bound<'_, PyType>, name: &str) -> PyResult<Self> {
        Ok(PyArchitecture(Architecture::paper(name)?))
    }

    #[classmethod]
    fn from_json(_cls: &Bound<'_, PyType>, text: &str) -> PyResult<Self> {
        Ok(PyArchitecture(Architecture::from_json(text)?))
    }

    fn to_json(&self) -> String {
        self.0.to_json()
    }

    /// From a dict with the keys of :meth:`to_dict` (``dilations`` and ``width`` optional).
    #[classmethod]
    fn from_dict(_cls: &Bound<'_, PyType>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        if !data.is_instance_of::<PyDict>() {
            return Err(CrnasError::type_("data", "a dict", data.get_type()).into());
        }
        let arch = pythonize::depythonize::<Architecture>(data)
            .map_err(|e| CrnasError::value("data", "a dict with the keys family, blocks and optionally dilations, width", e))?;
        Ok(PyArchitecture(Architecture::completed(arch)?))
    }

    /// ``{"family": ..., "blocks": [...], "dilations": [...], "width": ...}``: the JSON form as plain Python data.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize::pythonize(py, &self.0)?)
    }

    /// A copy with some fields replaced (new ``blocks`` without ``dilations`` resets them to 1).
    #[pyo3(signature = (*, blocks = None, dilations = None, width = None))]
    fn replace(&self, blocks: Option<Vec<i64>>, dilations: Option<Vec<i64>>, width: Option<Width>) -> PyResult<Self> {
        let a = &self.0;
        let dilations = match (&blocks, dilations) {
            (_, Some(d)) => Some(counts("dilations", &d)?),
            (None, None) => Some(a.dilations.clone()),
            (Some(_), None) => None,
        };
        let blocks = blocks.map(|b| counts("blocks", &b)).transpose()?.unwrap_or_else(|| a.blocks.clone());
        Ok(PyArchitecture(Architecture::new(a.family, blocks, dilations, width.map_or(a.width, |w| w.0))?))
    }

    #[getter]
    fn family(&self) -> &'static str {
        self.0.family.name()
    }
    #[getter]
    fn blocks(&self) -> Vec<usize> {
        self.0.blocks.clone()
    }
    #[getter]
    fn dilations(&self) -> Vec<usize> {
        self.0.dilations.clone()
    }
    #[getter]
    fn width(&self) -> f64 {
        self.0.width
    }
    #[getter]
    fn num_blocks(&self) -> usize {
        self.0.num_blocks()
    }
    /// Dilations grouped by stage.
    #[getter]
    fn stage_dilations(&self) -> Vec<Vec<usize>> {
        (0..4).map(|i| self.0.stage_dilations(i).to_vec()).collect()
    }

    /// The expanded network (stem, blocks of each stage with channels/stride/dilation) as plain
    /// Python data; what the model builders read.
    fn layout<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize::pythonize(py, &self.0.layout())?)
    }

    fn __repr__(&self) -> String {
        self.0.to_string()
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp, py: Python<'_>) -> PyObject {
        let Ok(other) = other.downcast::<PyArchitecture>() else { return py.NotImplemented() };
        match op {
            CompareOp::Eq => (self.0 == other.get().0).into_py_any(py).unwrap_or_else(|_| py.NotImplemented()),
            CompareOp::Ne => (self.0 != other.get().0).into_py_any(py).unwrap_or_else(|_| py.NotImplemented()),
            _ => py.NotImplemented(),
        }
    }

    fn __hash__(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.0.to_json().hash(&mut h);
        h.finish()
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        Ok((slf.get_type().getattr("from_json")?, (slf.get().0.to_json(),)))
    }
}

/// Per-layer, per-part and total MACs and parameters (see ``crnas.flops.count``).
#[pyclass(name = "FlopsReport", module = "crnas._core", frozen)]
pub struct PyFlopsReport(Report);

#[pymethods]
impl PyFlopsReport {
    /// Multiply-accumulates.
    #[getter]
    fn macs(&self) -> u64 {
        self.0.macs()
    }
    #[getter]
    fn params(&self) -> u64 {
        self.0.params()
    }
    /// MACs per part (``stem``, ``C2``..``C5``, ``classifier``, ``fpn``, ``rpn``, ...), in network order.
    #[getter]
    fn by_stage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (part, macs, _) in self.0.by_part() {
            d.set_item(part.name(), macs)?;
        }
        Ok(d)
    }
    #[getter]
    fn params_by_stage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (part, _, params) in self.0.by_part() {
            d.set_item(part.name(), params)?;
        }
        Ok(d)
    }
    /// One dict per counted layer: name, part, kind, macs, params, output, repeats.
    #[getter]
    fn layers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize::pythonize(py, &self.0.layers)?)
    }
    #[getter]
    fn input_size(&self) -> (usize, usize) {
        self.0.input_size
    }
    #[getter]
    fn detector(&self) -> Option<&'static str> {
        self.0.detector.map(Detector::name)
    }
    #[getter]
    fn convention<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize::pythonize(py, &self.0.convention)?)
    }
    /// The breakdown as a text table (``layers=True`` adds one row per layer).
    #[pyo3(signature = (layers = false))]
    fn table(&self, layers: bool) -> String {
        self.0.table(layers)
    }
    fn __repr__(&self) -> String {
        format!(
            "FlopsReport({}, input_size={:?}, macs={:.4} G, params={:.4} M)",
            self.0.detector.map(Detector::name).unwrap_or("backbone"),
            self.0.input_size,
            self.0.macs() as f64 / 1e9,
            self.0.params() as f64 / 1e6
        )
    }
}

/// The counting convention from a dict of its fields (missing or `None`: the default).
fn convention(args: Option<&Bound<'_, PyDict>>) -> PyResult<Convention> {
    let mut conv = Convention::default();
    let Some(args) = args else { return Ok(conv) };
    for (key, value) in args.iter() {
        let key: String = key.extract()?;
        if value.is_none() {
            continue;
        }
        let count = |v: &Bound<'_, PyAny>| -> PyResult<usize> {
            let n: i64 = v.extract().map_err(|_| CrnasError::type_(key.as_str(), "an int", v.get_type()))?;
            Ok(usize::try_from(n).map_err(|_| CrnasError::value(key.as_str(), "a non-negative integer", n))?)
        };
        match key.as_str() {
            "num_classes" => conv.num_classes = count(&value)?,
            "rois" => conv.rois = count(&value)?,
            "mask_rois" => conv.mask_rois = count(&value)?,
            "size_divisible" => conv.size_divisible = count(&value)?,
            "fpn_channels" => conv.fpn_channels = count(&value)?,
            "representation_size" => conv.representation_size = count(&value)?,
            "classifier" => conv.classifier = value.extract().map_err(|_| CrnasError::type_("classifier", "a bool", value.get_type()))?,
            other => {
                return Err(CrnasError::type_(
                    "convention",
                    "keys among num_classes, rois, mask_rois, size_divisible, fpn_channels, representation_size, classifier",
                    format!("{other:?}"),
                )
                .into())
            }
        }
    }
    Ok(conv)
}

fn detector(name: Option<&str>) -> Result<Option<Detector>> {
    name.map(Detector::parse).transpose()
}

#[pyfunction]
#[pyo3(signature = (arch, input_size, detector_name = None, convention_args = None))]
fn flops_count(
    arch: &PyArchitecture,
    input_size: (i64, i64),
    detector_name: Option<&str>,
    convention_args: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyFlopsReport> {
    let conv = convention(convention_args)?;
    Ok(PyFlopsReport(flops::count(&arch.0, size2("input_size", input_size)?, detector(detector_name)?, &conv)?))
}

#[pyfunction]
#[pyo3(signature = (archs, input_size, detector_name = None, convention_args = None))]
fn flops_count_many<'py>(
    py: Python<'py>,
    archs: Vec<Bound<'py, PyArchitecture>>,
    input_size: (i64, i64),
    detector_name: Option<&str>,
    convention_args: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyArray1<u64>>> {
    let conv = convention(convention_args)?;
    let archs: Vec<&Architecture> = archs.iter().map(|a| &a.get().0).collect();
    let (hw, det) = (size2("input_size", input_size)?, detector(detector_name)?);
    let macs = py.allow_threads(|| flops::count_many(&archs, hw, det, &conv))?;
    Ok(macs.into_pyarray(py))
}

/// Block counts per stage drawn from per-stage choice sets under a budget (see ``crnas.StageSpace``).
#[pyclass(name = "StageSpace", module = "crnas._core", frozen)]
pub struct PyStageSpace(StageSpace);

#[pymethods]
impl PyStageSpace {
    #[new]
    #[pyo3(signature = (family, choices, *, budget = None, flops_tolerance = None, input_size = None, width = 1.0))]
    fn new(
        py: Python<'_>,
        family: &str,
        choices: Vec<Vec<i64>>,
        budget: Option<i64>,
        flops_tolerance: Option<f64>,
        input_size: Option<(i64, i64)>,
        width: f64,
    ) -> PyResult<Self> {
        let family = Family::parse(family)?;
        let choices = choices.iter().enumerate().map(|(i, c)| counts(&format!("choices[{i}]"), c)).collect::<Result<Vec<_>>>()?;
        let budget = budget.map(|b| usize::try_from(b).map_err(|_| CrnasError::value("budget", "a non-negative block count", b))).transpose()?;
        let hw = input_size.map(|s| size2("input_size", s)).transpose()?.unwrap_or(MACS_INPUT_SIZE);
        Ok(PyStageSpace(py.allow_threads(|| StageSpace::new(family, choices, budget, flops_tolerance, hw, width))?))
    }

    /// The paper's space of a family (ResNet series: its choice sets with the baseline's block
    /// count; MobileNetV2: crnas's sets within ±1% of the baseline's MACs at 800×1088).
    #[classmethod]
    fn paper(_cls: &Bound<'_, PyType>, py: Python<'_>, family: &str) -> PyResult<Self> {
        let family = Family::parse(family)?;
        Ok(PyStageSpace(py.allow_threads(|| StageSpace::paper(family))?))
    }

    #[getter]
    fn family(&self) -> &'static str {
        self.0.family.name()
    }
    #[getter]
    fn choices(&self) -> Vec<Vec<usize>> {
        self.0.choices.clone()
    }
    #[getter]
    fn width(&self) -> f64 {
        self.0.width
    }
    /// ``{"type": "blocks", "total": N}`` or ``{"type": "macs", "target": ..., "tolerance": ..., "input_size": ...}``.
    #[getter]
    fn budget<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize::pythonize(py, &self.0.budget)?)
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }

    fn __contains__(&self, blocks: Vec<i64>) -> bool {
        counts("blocks", &blocks).map(|b| self.0.contains(&b)).unwrap_or(false)
    }

    /// Every feasible allocation, in lexicographic order.
    fn allocations(&self) -> Vec<Vec<usize>> {
        self.0.allocations().iter().map(|a| a.to_vec()).collect()
    }

    /// ``k`` allocations drawn with replacement, reproducible from ``seed``: ``sampling="uniform"``
    /// (every feasible allocation equally likely), ``"balanced"`` (each stage's depth as close to
    /// uniform over its feasible depths as the space allows; see :meth:`weights`) or
    /// ``"independent"`` (each stage's depth uniform over its feasible depths, independently: the
    /// draws need not keep the budget).
    #[pyo3(signature = (k, *, seed = 0, sampling = "uniform"))]
    fn sample(&self, k: usize, seed: u64, sampling: &str) -> PyResult<Vec<Vec<usize>>> {
        let sampling = Sampling::parse(sampling)?;
        Ok(self.0.sample_with(k, seed, sampling)?.iter().map(|a| a.to_vec()).collect())
    }

    /// The probability of each allocation (in :meth:`allocations` order) under ``sampling``; under
    /// ``"independent"`` they sum to the chance that a draw is feasible.
    #[pyo3(signature = (sampling = "uniform"))]
    fn weights(&self, sampling: &str) -> PyResult<Vec<f64>> {
        Ok(self.0.weights(Sampling::parse(sampling)?))
    }

    /// Each stage's depths that occur in at least one feasible allocation, ascending (the box that
    /// ``"independent"`` sampling draws from).
    fn feasible_depths(&self) -> Vec<Vec<usize>> {
        self.0.feasible_depths().to_vec()
    }

    /// Few-shot splitting: the allocations cut by ``stage``'s depth (0 = C2) into ``parts`` sub-spaces
    /// of contiguous depth ranges, as even in allocation count as possible; each keeps this budget.
    fn split(&self, stage: usize, parts: usize) -> PyResult<Vec<PyStageSpace>> {
        Ok(self.0.split(stage, parts)?.into_iter().map(PyStageSpace).collect())
    }

    /// The architecture of ``blocks`` at this space's family and width.
    #[pyo3(signature = (blocks, dilations = None))]
    fn architecture(&self, blocks: Vec<i64>, dilations: Option<Vec<i64>>) -> PyResult<PyArchitecture> {
        let dilations = dilations.map(|d| counts("dilations", &d)).transpose()?;
        Ok(PyArchitecture(self.0.architecture(&counts("blocks", &blocks)?, dilations)?))
    }

    /// Number of architectures in the joint space (allocation × a dilation in {1, 2, 3} per block).
    fn joint_size(&self) -> PyResult<u128> {
        Ok(self.0.joint_size()?)
    }

    /// ``k`` architectures drawn uniformly from the joint space.
    #[pyo3(signature = (k, *, seed = 0))]
    fn sample_architectures(&self, k: usize, seed: u64) -> PyResult<Vec<PyArchitecture>> {
        Ok(self.0.sample_architectures(k, seed)?.into_iter().map(PyArchitecture).collect())
    }

    fn __repr__(&self) -> String {
        let budget = match &self.0.budget {
            Budget::Blocks { total } => format!("budget={total} blocks"),
            Budget::Macs { tolerance, input_size, .. } => {
                format!("MACs within ±{}% of the baseline at {}x{}", tolerance * 100.0, input_size.0, input_size.1)
            }
        };
        format!("StageSpace({}, {}, {} allocations)", self.0.family, budget, self.0.len())
    }
}

fn parse_device(name: &str) -> Result<tch::Device> {
    match name {
        "cpu" => Ok(tch::Device::Cpu),
        "cuda" => Ok(tch::Device::Cuda(0)),
        "mps" => Ok(tch::Device::Mps),
        other => other
            .strip_prefix("cuda:")
            .and_then(|i| i.parse().ok())
            .map(tch::Device::Cuda)
            .ok_or_else(|| CrnasError::value("device", "'cpu', 'cuda' or 'cuda:<index>'", format!("{other:?}"))),
    }
}

/// One-hot dilation paths ``[num_blocks, batch_size, num_choices]`` on ``device``.
#[pyfunction]
#[pyo3(signature = (num_blocks, batch_size, num_choices, seed, logits, device))]
fn sample_paths(
    py: Python<'_>,
    num_blocks: usize,
    batch_size: usize,
    num_choices: usize,
    seed: u64,
    logits: Option<PyTensor>,
    device: &str,
) -> PyResult<PyTensor> {
    let device = parse_device(device)?;
    let out = py.allow_threads(move || space::sample_paths(num_blocks, batch_size, num_choices, seed, logits.as_deref(), device))?;
    Ok(PyTensor(out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__torch_version__", env!("CRNAS_TORCH_VERSION"))?;
    // The constants Python reads instead of retyping them (see crnas.arch).
    m.add("FAMILIES", PyTuple::new(py, Family::ALL.map(Family::name))?)?;
    m.add("PAPER_ARCHITECTURES", PyTuple::new(py, PAPER_ARCHITECTURES)?)?;
    m.add("DILATIONS", PyTuple::new(py, DILATIONS)?)?;
    m.add("DETECTORS", PyTuple::new(py, Detector::ALL.map(Detector::name))?)?;
    m.add("CONVENTION", pythonize::pythonize(py, &Convention::default())?)?;
    m.add("MACS_INPUT_SIZE", MACS_INPUT_SIZE)?;
    m.add("SAMPLINGS", PyTuple::new(py, Sampling::ALL.map(Sampling::name))?)?;
    m.add_class::<PyArchitecture>()?;
    m.add_class::<PyStageSpace>()?;
    m.add_class::<PyFlopsReport>()?;
    m.add_function(wrap_pyfunction!(mdconv_forward, m)?)?;
    m.add_function(wrap_pyfunction!(mdconv_backward, m)?)?;
    m.add_function(wrap_pyfunction!(flops_count, m)?)?;
    m.add_function(wrap_pyfunction!(flops_count_many, m)?)?;
    m.add_function(wrap_pyfunction!(sample_paths, m)?)?;
    Ok(())
}
