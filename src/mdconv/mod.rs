//! Fused multi-dilation 3×3 convolution with one kernel shared by all dilations (docs/design.md#fused-convolution).
//!
//! `y = Σ_d mix[·, d] · conv2d(x, W, stride, padding = d, dilation = d, groups) + bias`
//!
//! Every branch has the same output size because padding = dilation, so the sum can be taken
//! on the im2col side: `Σ_d m_d · (W ⊛_d x) = W · Σ_d m_d · im2col_d(x)`. The forward is one
//! GEMM whatever the number of dilations; the backward is one GEMM for `dW` (against the mixed
//! columns), one GEMM for the column gradient, then a col2im per dilation that also yields
//! `dmix` (inner products of the column gradient with each dilation's columns).
//!
//! Two backends implement the same maths:
//! - [`cpu`]: Rust kernels on torch's intra-op threads ([`crate::parallel`]) that build the mixed
//!   column buffer straight from `x` in one pass and scatter the column gradient in one pass, tile
//!   by tile, around a GEMM (`gemm` crate); used for float32/float64 tensors on the CPU.
//! - [`aten`]: composed ATen ops (`im2col`, `matmul`, `col2im`), chunked over the batch; used on
//!   CUDA and for other dtypes, and device-agnostic.

pub mod aten;
pub mod cpu;

use crate::error::{ensure, CrnasError, Result};
use tch::{Device, Kind, Tensor};

/// Shape of one multi-dilation convolution, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Geometry {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub groups: usize,
    pub stride: usize,
    pub dilations: Vec<usize>,
    /// `mix` is `[N, D]` (per sample) rather than `[D]` (shared by the batch).
    pub per_sample_mix: bool,
}

impl Geometry {
    pub fn ho(&self) -> usize {
        (self.h - 1) / self.stride + 1
    }
    pub fn wo(&self) -> usize {
        (self.w - 1) / self.stride + 1
    }
    pub fn d(&self) -> usize {
        self.dilations.len()
    }
    /// Input channels per group.
    pub fn cg(&self) -> usize {
        self.c / self.groups
    }
    /// Output channels per group.
    pub fn og(&self) -> usize {
        self.o / self.groups
    }
    /// Rows of the column matrix per group (`C/groups · 9`).
    pub fn kg(&self) -> usize {
        self.cg() * 9
    }
}

/// Which implementation runs the op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The Rust column/GEMM kernels for float32/float64 CPU tensors, composed ATen ops otherwise.
    Auto,
    /// The Rust column/GEMM kernels (CPU, float32/float64 only).
    Cpu,
    /// Composed ATen ops (any device, any floating dtype).
    Aten,
}

impl std::str::FromStr for Backend {
    type Err = CrnasError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Backend::Auto),
            "cpu" => Ok(Backend::Cpu),
            "aten" => Ok(Backend::Aten),
            other => Err(CrnasError::value("backend", "one of 'auto', 'cpu', 'aten'", format!("{other:?}"))),
        }
    }
}

/// A dtype as Python spells it (``torch.float32``), so both sides of the op word errors alike.
fn kind_name(kind: Kind) -> String {
    let name = match kind {
        Kind::Uint8 => "uint8",
        Kind::Int8 => "int8",
        Kind::Int16 => "int16",
        Kind::Int => "int32",
        Kind::Int64 => "int64",
        Kind::Half => "float16",
        Kind::Float => "float32",
        Kind::Double => "float64",
        Kind::ComplexHalf => "complex32",
        Kind::ComplexFloat => "complex64",
        Kind::ComplexDouble => "complex128",
        Kind::Bool => "bool",
        Kind::BFloat16 => "bfloat16",
        other => return format!("{other:?}").to_lowercase(),
    };
    format!("torch.{name}")
}

/// A device as Python spells it. tch reports every device other than CPU, CUDA and Vulkan as MPS
/// (the meta device included), so only those names are exact.
fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn shape(t: &Tensor) -> String {
    format!("{:?}", t.size())
}

fn check_like(arg: &str, t: &Tensor, input: &Tensor) -> Result<()> {
    ensure!(
        t.kind() == input.kind(),
        CrnasError::type_(arg, format!("dtype {} (the input's)", kind_name(input.kind())), kind_name(t.kind()))
    );
    ensure!(
        t.device() == input.device(),
        CrnasError::value(arg, format!("a tensor on {} (the input's device)", device_name(input.device())), device_name(t.device()))
    );
    Ok(())
}

/// Validate the arguments of the op and return its geometry. Every check the kernels rely on
/// for memory safety happens here. The checks, their order and their messages are those of
/// `crnas.ops.multi_dilation._validate` (tests/ops proves the two agree on every check).
pub fn validate(
    input: &Tensor,
    weight: &Tensor,
    mix: &Tensor,
    bias: Option<&Tensor>,
    dilations: &[i64],
    stride: i64,
    groups: i64,
) -> Result<Geometry> {
    ensure!(!dilations.is_empty(), CrnasError::value("dilations", "at least one dilation", "[]"));
    for &d in dilations {
        ensure!(d >= 1, CrnasError::value("dilations", "ints >= 1", format!("{dilations:?}")));
    }
    ensure!(stride >= 1, CrnasError::value("stride", "an int >= 1", stride));
    ensure!(groups >= 1, CrnasError::value("groups", "an int >= 1", groups));
    let kind = input.kind();
    ensure!(
        matches!(kind, Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16),
        CrnasError::type_("input", "a floating-point tensor (float16, bfloat16, float32 or float64)", kind_name(kind))
    );
    check_like("weight", weight, input)?;
    check_like("mix", mix, input)?;
    if let Some(b) = bias {
        check_like("bias", b, input)?;
    }
    ensure!(input.dim() == 4, CrnasError::value("input", "a 4-D tensor [N, C, H, W]", format!("shape {}", shape(input))));
    ensure!(
        weight.dim() == 4 && weight.size()[2..] == [3, 3],
        CrnasError::value("weight", "a 4-D tensor [O, C/groups, 3, 3]", format!("shape {}", shape(weight)))
    );
    let (n, c, h, w) = input.size4()?;
    let (o, cg, _, _) = weight.size4()?;
    ensure!(c >= 1 && h >= 1 && w >= 1, CrnasError::value("input", "C, H and W >= 1", format!("shape {}", shape(input))));
    ensure!(
        c % groups == 0,
        CrnasError::value("groups", format!("a divisor of the input channels ({c})"), groups)
    );
    ensure!(
        cg * groups == c,
        CrnasError::value(
            "weight",
            format!("shape [O, {}, 3, 3] (input channels {c} / groups {groups})", c / groups),
            format!("shape {}", shape(weight))
        )
    );
    ensure!(
        o >= 1 && o % groups == 0,
        CrnasError::value("weight", format!("a positive number of output channels divisible by groups ({groups})"), o)
    );
    let d = dilations.len() as i64;
    let per_sample_mix = match mix.size().as_slice() {
        [md] if *md == d => false,
        [mn, md] if *mn == n && *md == d => true,
        _ => {
            return Err(CrnasError::value(
                "mix",
                format!("shape [{d}] (one weight per dilation) or [{n}, {d}] (per sample)"),
                format!("shape {}", shape(mix)),
            ))
        }
    };
    if let Some(b) = bias {
        ensure!(
            b.size() == [o],
            CrnasError::value("bias", format!("shape [{o}] (one value per output channel)"), format!("shape {}", shape(b)))
        );
    }
    Ok(Geometry {
        n: n as usize,
        c: c as usize,
        h: h as usize,
        w: w as usize,
        o: o as usize,
        groups: groups as usize,
        stride: stride as usize,
        dilations: dilations.iter().map(|&d| d as usize).collect(),
        per_sample_mix,
    })
}

fn use_cpu_kernels(backend: Backend, input: &Tensor) -> Result<bool> {
    let fast = input.device() == Device::Cpu && matches!(input.kind(), Kind::Float | Kind::Double);
    match backend {
        Backend::Auto => Ok(fast),
        Backend::Aten => Ok(false),
        Backend::Cpu => {
            ensure!(
                fast,
                CrnasError::value(
                    "backend",
                    "float32/float64 CPU tensors for the 'cpu' backend",
                    format!("{} on {}", kind_name(input.kind()), device_name(input.device()))
                )
            );
            Ok(true)
        }
    }
}

/// Forward of the fused op. Returns a contiguous `[N, O, Ho, Wo]` tensor.
pub fn forward(
    input: &Tensor,
    weight: &Tensor,
    mix: &Tensor,
    bias: Option<&Tensor>,
    dilations: &[i64],
    stride: i64,
    groups: i64,
    backend: Backend,
) -> Result<Tensor> {
    let geo = validate(input, weight, mix, bias, dilations, stride, groups)?;
    let _guard = tch::no_grad_guard();
    if use_cpu_kernels(backend, input)? {
        cpu::forward(&geo, input, weight, mix, bias)
    } else {
        aten::forward(&geo, input, weight, mix, bias)
    }
}

/// Which gradients to compute: `[input, weight, mix]`.
pub type OutputMask = [bool; 3];

/// Backward of the fused op: `(grad_input, grad_weight, grad_mix)`, each shaped like its
/// argument. Gradients not asked for in `mask` come back as zero-size tensors.
pub fn backward(
    grad: &Tensor,
    input: &Tensor,
    weight: &Tensor,
    mix: &Tensor,
    dilations: &[i64],
    stride: i64,
    groups: i64,
    mask: OutputMask,
    backend: Backend,
) -> Result<(Tensor, Tensor, Tensor)> {
    let geo = validate(input, weight, mix, None, dilations, stride, groups)?;
    check_like("grad", grad, input)?;
    let expected = [geo.n as i64, geo.o as i64, geo.ho() as i64, geo.wo() as i64];
    ensure!(
        grad.size() == expected,
        CrnasError::value("grad", format!("shape {expected:?} (the output's)"), format!("shape {}", shape(grad)))
    );
    let _guard = tch::no_grad_guard();
    if use_cpu_kernels(backend, input)? {
        cpu::backward(&geo, grad, input, weight, mix, mask)
    } else {
        aten::backward(&geo, grad, input, weight, mix, mask)
    }
}

/// A zero-size placeholder for a gradient that was not requested.
pub(crate) fn skipped(like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::f_empty([0], (like.kind(), like.device()))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    /// Σ_d mix_d · conv2d(x, W, dilation d) with tch's own convolution (shared or per-sample mix).
    fn reference(x: &Tensor, w: &Tensor, mix: &Tensor, dil: &[i64], s: i64, g: i64) -> Tensor {
        let mut out: Option<Tensor> = None;
        for (i, &d) in dil.iter().enumerate() {
            let y = x.conv2d(w, None::<Tensor>, [s, s], [d, d], [d, d], g);
            let m = if mix.dim() == 1 { mix.get(i as i64) } else { mix.select(1, i as i64).view([-1, 1, 1, 1]) };
            let term = y * m;
            out = Some(match out {
                None => term,
                Some(o) => o + term,
            });
        }
        out.unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        if a.numel() == 0 {
            return 0.0;
        }
        (a - b).abs().max().double_value(&[])
    }

    const CASES: &[(i64, i64, i64, i64, i64, i64, i64, &[i64], bool)] = &[
        // n, c, o, h, w, stride, groups, dilations, per-sample mix
        (2, 4, 6, 9, 7, 1, 1, &[1, 2, 3], true),
        (3, 6, 4, 8, 11, 2, 2, &[1, 3], false),
        (1, 4, 8, 5, 5, 1, 4, &[2], true),
        (2, 3, 5, 1, 2, 2, 1, &[1, 2, 3], false),
        (0, 3, 3, 4, 4, 1, 1, &[1, 2, 3], true),
        (2, 16, 8, 21, 19, 1, 1, &[1, 2, 3], true),
    ];

    #[test]
    fn forward_and_backward_match_tch_convolutions() {
        tch::manual_seed(0);
        let opts = (Kind::Double, Device::Cpu);
        for &(n, c, o, h, w, s, g, dil, per_sample) in CASES {
            let x = Tensor::randn([n, c, h, w], opts).set_requires_grad(true);
            let wt = Tensor::randn([o, c / g, 3, 3], opts).set_requires_grad(true);
            let mix_shape: Vec<i64> = if per_sample { vec![n, dil.len() as i64] } else { vec![dil.len() as i64] };
            let mix = Tensor::randn(mix_shape.as_slice(), opts).set_requires_grad(true);
            let y_ref = reference(&x, &wt, &mix, dil, s, g);
            let gy = Tensor::randn_like(&y_ref);
            let seeded = Tensor::run_backward(&[(&y_ref * &gy).sum(Kind::Double)], &[&x, &wt, &mix], false, false);
            let (xd, wd, md) = (x.detach(), wt.detach(), mix.detach());
            for backend in [Backend::Cpu, Backend::Aten] {
                let y = forward(&xd, &wd, &md, None, dil, s, g, backend).unwrap();
                assert!(max_diff(&y, &y_ref) < 1e-10, "{backend:?} forward, case n={n} c={c} o={o}");
                let (dx, dw, dm) = backward(&gy, &xd, &wd, &md, dil, s, g, [true, true, true], backend).unwrap();
                for (name, got, want) in [("dx", &dx, &seeded[0]), ("dw", &dw, &seeded[1]), ("dmix", &dm, &seeded[2])] {
                    assert_eq!(got.size(), want.size(), "{backend:?} {name} shape");
                    assert!(max_diff(got, want) < 1e-10, "{backend:?} {name}, case n={n} c={c} o={o}");
                }
            }
        }
    }

    #[test]
    fn masked_gradients_are_skipped() {
        let opts = (Kind::Float, Device::Cpu);
        let (x, w, mix) = (Tensor::randn([2, 4, 6, 6], opts), Tensor::randn([4, 4, 3, 3], opts), Tensor::ones([3], opts));
        let gy = Tensor::randn([2, 4, 6, 6], opts);
        let (dx, dw, dm) = backward(&gy, &x, &w, &mix, &[1, 2, 3], 1, 1, [false, true, false], Backend::Auto).unwrap();
        assert_eq!(dx.size(), [0]);
        assert_eq!(dw.size(), [4, 4, 3, 3]);
        assert_eq!(dm.size(), [0]);
    }

    #[test]
    fn bad_arguments_are_errors_not_panics() {
        let opts = (Kind::Float, Device::Cpu);
        let x = Tensor::randn([2, 4, 6, 6], opts);
        let w = Tensor::randn([4, 4, 3, 3], opts);
        let mix = Tensor::ones([3], opts);
        let cases: Vec<(Tensor, Tensor, Tensor, Vec<i64>, i64, i64, &str)> = vec![
            (x.view([8, 6, 6]), w.shallow_clone(), mix.shallow_clone(), vec![1, 2, 3], 1, 1, "input"),
            (x.shallow_clone(), Tensor::randn([4, 4, 5, 5], opts), mix.shallow_clone(), vec![1, 2, 3], 1, 1, "weight"),
            (x.shallow_clone(), w.shallow_clone(), Tensor::ones([2], opts), vec![1, 2, 3], 1, 1, "mix"),
            (x.shallow_clone(), w.shallow_clone(), mix.shallow_clone(), vec![1, 0, 3], 1, 1, "dilations"),
            (x.shallow_clone(), w.shallow_clone(), mix.shallow_clone(), vec![1, 2, 3], 0, 1, "stride"),
            (x.shallow_clone(), w.shallow_clone(), mix.shallow_clone(), vec![1, 2, 3], 1, 3, "groups"),
            (x.to_kind(Kind::Double), w.shallow_clone(), mix.shallow_clone(), vec![1, 2, 3], 1, 1, "weight"),
            (x.to_kind(Kind::Int), w.shallow_clone(), mix.shallow_clone(), vec![1, 2, 3], 1, 1, "input"),
        ];
        for (x, w, m, dil, s, g, arg) in cases {
            let err = forward(&x, &w, &m, None, &dil, s, g, Backend::Auto).unwrap_err();
            assert!(err.to_string().starts_with(arg), "expected an error about {arg}, got {err}");
        }
    }
}
