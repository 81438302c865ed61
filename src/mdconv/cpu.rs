//! CPU kernels (float32/float64): the mixed column buffer is built from `x` in one pass, tile by
//! tile, and fed to a GEMM; the backward scatters the column gradient for every dilation in one
//! pass and accumulates `dmix` on the way.
//!
//! Parallelism (torch's intra-op threads, see [`crate::parallel`]):
//! - forward: one task per (sample, tile of output rows); each builds its column tile
//!   `[C·9, T]` and runs a single-threaded GEMM into its own slice of the output;
//! - backward: one task per block of input channels, all gradients in one pass; it owns
//!   `dx[:, block]` and the columns `dW[:, block]`, so nothing is shared but the `dmix` partial
//!   sums, reduced in task order at the end.
//!
//! Memory stays at one column tile per worker (a few hundred KiB), never `[N, C·9, H·W]`.

use super::{skipped, Geometry, OutputMask};
use crate::error::{CrnasError, Result};
use crate::parallel::{for_each_task, num_threads};
use gemm::{gemm, Parallelism};
use tch::{Device, Kind, Tensor};

/// Element types with a CPU kernel (`KIND` and `ZERO` come from tch's `Element`).
pub trait Elem:
    tch::kind::Element + Copy + Send + Sync + PartialEq + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> + std::ops::AddAssign + 'static
{
    const ONE: Self;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

impl Elem for f32 {
    const ONE: Self = 1.0;
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Elem for f64 {
    const ONE: Self = 1.0;
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// Column-tile budgets (elements). The forward tile holds all `C·9` rows; the backward tile
/// holds one channel block's rows. A tile spans at least `MIN_TILE_COLS` output positions (or
/// the whole map) so the GEMM stays efficient on small maps with many channels.
const FWD_TILE_ELEMS: usize = 1 << 17;
const BWD_TILE_ELEMS: usize = 1 << 16;
const MIN_TILE_COLS: usize = 256;
/// Backward tasks per worker thread (load balance vs GEMM size).
const BWD_TASKS_PER_THREAD: usize = 2;

/// A raw pointer that tasks may share because each writes a disjoint region.
#[derive(Clone, Copy)]
struct SharedMut<T>(*mut T);
unsafe impl<T> Send for SharedMut<T> {}
unsafe impl<T> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// Method access, so closures capture the `Sync` wrapper rather than the raw pointer field.
    fn ptr(self) -> *mut T {
        self.0
    }
}

/// Per-thread scratch buffers carved out of one torch tensor, so the memory shows up in torch's
/// allocator statistics and profiler like every other tensor of the op.
struct Scratch<'a, T> {
    base: SharedMut<T>,
    per_slot: usize,
    slots: usize,
    next: std::sync::atomic::AtomicUsize,
    _buffer: std::marker::PhantomData<&'a mut [T]>,
}

/// The tensor backing `slots` scratch buffers of `per_slot` elements.
fn scratch_tensor<T: Elem>(slots: usize, per_slot: usize) -> Result<Tensor> {
    Ok(Tensor::f_empty([(slots * per_slot).max(1) as i64], (T::KIND, Device::Cpu))?)
}

impl<'a, T: Elem> Scratch<'a, T> {
    /// Split `buffer` (from [`scratch_tensor`]) into `slots` buffers of `per_slot` elements.
    fn new(buffer: &'a mut Tensor, slots: usize, per_slot: usize) -> Self {
        let base = SharedMut(buffer.data_ptr() as *mut T);
        Scratch { base, per_slot, slots, next: std::sync::atomic::AtomicUsize::new(0), _buffer: std::marker::PhantomData }
    }

    /// A fresh buffer for the calling thread. Each slot is handed out at most once, so the
    /// returned slices never alias.
    #[allow(clippy::mut_from_ref)]
    fn take(&self) -> &mut [T] {
        let slot = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(slot < self.slots, "more scratch slots requested than threads");
        // SAFETY: slot < slots, distinct per call, inside the buffer borrowed for 'a.
        unsafe { std::slice::from_raw_parts_mut(self.base.ptr().add(slot * self.per_slot), self.per_slot) }
    }
}

/// View a contiguous CPU tensor of element type `T` as a slice.
fn slice<T: Elem>(t: &Tensor) -> Result<&[T]> {
    if t.kind() != T::KIND || t.device() != Device::Cpu || !t.is_contiguous() {
        return Err(CrnasError::value("tensor", format!("a contiguous {:?} CPU tensor", T::KIND), format!("{:?}", t.kind())));
    }
    let n = t.numel();
    if n == 0 {
        return Ok(&[]);
    }
    // SAFETY: dtype, device and contiguity were checked; the tensor outlives the slice.
    Ok(unsafe { std::slice::from_raw_parts(t.data_ptr() as *const T, n) })
}

/// Output positions `o` (of `len_out`) with `0 <= o·s + off < len_in`, as a half-open range.
fn valid_range(off: isize, s: usize, len_in: usize, len_out: usize) -> (usize, usize) {
    let lo = if off < 0 { ((-off) as usize).div_ceil(s) } else { 0 };
    let top = len_in as isize - 1 - off;
    let hi = if top < 0 { 0 } else { (top as usize / s + 1).min(len_out) };
    (lo.min(hi), hi)
}

/// `mix` as a contiguous `[N, D]` tensor (a shared `[D]` mix is broadcast).
fn mix_rows(geo: &Geometry, mix: &Tensor) -> Result<Tensor> {
    Ok(mix.f_expand([geo.n as i64, geo.d() as i64], false)?.f_contiguous()?)
}

/// Output rows per tile so a tile holds about `budget` column elements with `rows_k` rows, spans
/// at least `MIN_TILE_COLS` positions, and (when `min_tasks > 0`) the batch splits into at least
/// `min_tasks` tiles.
fn tile_rows(geo: &Geometry, rows_k: usize, budget: usize, min_tasks: usize) -> usize {
    let wo = geo.wo();
    let by_budget = budget / (rows_k * wo).max(1);
    let by_gemm = MIN_TILE_COLS.div_ceil(wo);
    let rows = by_budget.max(by_gemm);
    let rows = if min_tasks > 0 { rows.min((geo.n * geo.ho()).div_ceil(min_tasks).max(1)) } else { rows };
    rows.clamp(1, geo.ho())
}

/// Instruction sets the column kernels are compiled for; the best one is picked at run time.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SimdLevel {
    Avx512,
    Avx2,
    Baseline,
}

fn simd_level() -> SimdLevel {
    static LEVEL: std::sync::OnceLock<SimdLevel> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return SimdLevel::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return SimdLevel::Avx2;
            }
        }
        SimdLevel::Baseline
    })
}

/// Define `$name(args)` running `$imp(args)` compiled for AVX-512, AVX2+FMA or the baseline.
macro_rules! simd_dispatch {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $imp:ident) => {
        $(#[$m])*
        fn $name<T: Elem>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512<T: Elem>($($arg: $ty),*) {
                    $imp($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2<T: Elem>($($arg: $ty),*) {
                    $imp($($arg),*)
                }
                // SAFETY: the CPU supports the features (checked by simd_level).
                match simd_level() {
                    SimdLevel::Avx512 => return unsafe { avx512($($arg),*) },
                    SimdLevel::Avx2 => return unsafe { avx2($($arg),*) },
                    SimdLevel::Baseline => {}
                }
            }
            $imp($($arg),*)
        }
    };
}

simd_dispatch! {
    fn build_columns(geo: &Geometry, x_n: &[T], mix_n: &[T], c0: usize, c1: usize, r0: usize, r1: usize, col: &mut [T])
        => build_columns_impl
}

simd_dispatch! {
    fn scatter_columns(
        geo: &Geometry, x_n: &[T], mix_n: &[T], dcol: &[T], c0: usize, c1: usize, r0: usize, r1: usize,
        dx_n: Option<SharedMut<T>>, acc: Option<&mut [f64]>,
    ) => scatter_columns_impl
}

/// `y += a · x` (same length).
#[inline(always)]
fn axpy<T: Elem>(y: &mut [T], a: T, x: &[T]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `<a, b>` with 8 independent partial sums, so the loop vectorises.
#[inline(always)]
fn dot<T: Elem>(a: &[T], b: &[T]) -> T {
    const LANES: usize = 8;
    let mut lanes = [T::ZERO; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            lanes[i] += x[i] * y[i];
        }
    }
    let mut sum = T::ZERO;
    for (&x, &y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    lanes.iter().fold(sum, |acc, &v| acc + v)
}

/// `<g, x[0], x[s], x[2s], …>`.
#[inline(always)]
fn strided_dot<T: Elem>(g: &[T], x: &[T], s: usize) -> T {
    g.iter().zip(x.iter().step_by(s)).fold(T::ZERO, |acc, (&a, &b)| acc + a * b)
}

/// Write the mixed columns of one sample into `col` (`[(c1 - c0)·9, T]`, row-major, T = positions
/// of output rows `r0..r1`): `col[(c, kh, kw), p] = Σ_d mix[d] · x[c, r·s + (kh-1)d, ow·s + (kw-1)d]`.
#[inline(always)]
fn build_columns_impl<T: Elem>(
    geo: &Geometry,
    x_n: &[T],
    mix_n: &[T],
    c0: usize,
    c1: usize,
    r0: usize,
    r1: usize,
    col: &mut [T],
) {
    let (h, w, s, ho, wo) = (geo.h, geo.w, geo.stride, geo.ho(), geo.wo());
    let t = (r1 - r0) * wo;
    col.fill(T::ZERO);
    for ci in c0..c1 {
        let xc = &x_n[ci * h * w..(ci + 1) * h * w];
        for tap in 0..9 {
            let (kh, kw) = (tap / 3, tap % 3);
            let row = &mut col[((ci - c0) * 9 + tap) * t..][..t];
            for (di, &d) in geo.dilations.iter().enumerate() {
                let m = mix_n[di];
                if m == T::ZERO {
                    continue;
                }
                let dh = (kh as isize - 1) * d as isize;
                let dw = (kw as isize - 1) * d as isize;
                let (rlo, rhi) = valid_range(dh, s, h, ho);
                let (olo, ohi) = valid_range(dw, s, w, wo);
                if olo >= ohi {
                    continue;
                }
                for r in rlo.max(r0)..rhi.min(r1) {
                    let ih = ((r * s) as isize + dh) as usize;
                    let xrow = &xc[ih * w..(ih + 1) * w];
                    let dst = &mut row[(r - r0) * wo + olo..(r - r0) * wo + ohi];
                    let iw0 = ((olo * s) as isize + dw) as usize;
                    if s == 1 {
                        axpy(dst, m, &xrow[iw0..iw0 + (ohi - olo)]);
                    } else {
                        for (a, &b) in dst.iter_mut().zip(xrow[iw0..].iter().step_by(s)) {
                            *a += m * b;
                        }
                    }
                }
            }
        }
    }
}

/// The transpose of `build_columns` for one sample: `dx[c] += Σ_d mix[d] · col2im_d(dcol)` (when
/// `dx_n` is given) and `acc[d] += <dcol, im2col_d(x)>` (when `acc` is given).
#[inline(always)]
fn scatter_columns_impl<T: Elem>(
    geo: &Geometry,
    x_n: &[T],
    mix_n: &[T],
    dcol: &[T],
    c0: usize,
    c1: usize,
    r0: usize,
    r1: usize,
    dx_n: Option<SharedMut<T>>,
    mut acc: Option<&mut [f64]>,
) {
    let (h, w, s, ho, wo) = (geo.h, geo.w, geo.stride, geo.ho(), geo.wo());
    let t = (r1 - r0) * wo;
    for ci in c0..c1 {
        let xc = &x_n[ci * h * w..(ci + 1) * h * w];
        for tap in 0..9 {
            let (kh, kw) = (tap / 3, tap % 3);
            let grow = &dcol[((ci - c0) * 9 + tap) * t..][..t];
            for (di, &d) in geo.dilations.iter().enumerate() {
                let m = mix_n[di];
                let write_dx = dx_n.is_some() && m != T::ZERO;
                if !write_dx && acc.is_none() {
                    continue;
                }
                let dh = (kh as isize - 1) * d as isize;
                let dw = (kw as isize - 1) * d as isize;
                let (rlo, rhi) = valid_range(dh, s, h, ho);
                let (olo, ohi) = valid_range(dw, s, w, wo);
                if olo >= ohi {
                    continue;
                }
                let len = ohi - olo;
                let mut dot_sum = 0.0f64;
                for r in rlo.max(r0)..rhi.min(r1) {
                    let ih = ((r * s) as isize + dh) as usize;
                    let g = &grow[(r - r0) * wo + olo..][..len];
                    let iw0 = ((olo * s) as isize + dw) as usize;
                    if acc.is_some() {
                        let xrow = &xc[ih * w..(ih + 1) * w];
                        let row_dot = if s == 1 { dot(g, &xrow[iw0..iw0 + len]) } else { strided_dot(g, &xrow[iw0..], s) };
                        dot_sum += row_dot.to_f64();
                    }
                    if let (true, Some(base)) = (write_dx, dx_n) {
                        // SAFETY: this task owns dx[n, ci, :, :]; no other reference to it is live.
                        let dxrow = unsafe { std::slice::from_raw_parts_mut(base.ptr().add((ci * h + ih) * w), w) };
                        if s == 1 {
                            axpy(&mut dxrow[iw0..iw0 + len], m, g);
                        } else {
                            for (dst, &gj) in dxrow[iw0..].iter_mut().step_by(s).zip(g) {
                                *dst += m * gj;
                            }
                        }
                    }
                }
                if let Some(acc) = acc.as_deref_mut() {
                    acc[di] += dot_sum;
                }
            }
        }
    }
}

pub fn forward(geo: &Geometry, input: &Tensor, weight: &Tensor, mix: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match input.kind() {
        Kind::Float => forward_typed::<f32>(geo, input, weight, mix, bias),
        Kind::Double => forward_typed::<f64>(geo, input, weight, mix, bias),
        other => Err(CrnasError::type_("input", "float32 or float64 for the CPU kernels", format!("{other:?}"))),
    }
}

fn forward_typed<T: Elem>(geo: &Geometry, input: &Tensor, weight: &Tensor, mix: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (n, c, o, ho, wo) = (geo.n, geo.c, geo.o, geo.ho(), geo.wo());
    let (og, kg, l) = (geo.og(), geo.kg(), ho * wo);
    let x = input.f_contiguous()?;
    let wt = weight.f_contiguous()?;
    let m = mix_rows(geo, mix)?;
    let b = bias.map(|b| b.f_contiguous()).transpose()?;
    let y = Tensor::f_empty([n as i64, o as i64, ho as i64, wo as i64], (T::KIND, Device::Cpu))?;
    if n == 0 {
        return Ok(y);
    }
    let (xs, ws, ms) = (slice::<T>(&x)?, slice::<T>(&wt)?, slice::<T>(&m)?);
    let bs = b.as_ref().map(slice::<T>).transpose()?;
    let ys = SharedMut(y.data_ptr() as *mut T);

    let k = c * 9;
    let threads = num_threads();
    let rows = tile_rows(geo, k, FWD_TILE_ELEMS, 2 * threads);
    let tiles = ho.div_ceil(rows);
    let (chw, d) = (c * geo.h * geo.w, geo.d());
    let mut buffer = scratch_tensor::<T>(threads, k * rows * wo)?;
    let scratch = Scratch::<T>::new(&mut buffer, threads, k * rows * wo);
    for_each_task(
        threads,
        n * tiles,
        || scratch.take(),
        |col, task| {
                let (ni, ti) = (task / tiles, task % tiles);
                let (r0, r1) = (ti * rows, ((ti + 1) * rows).min(ho));
                let t = (r1 - r0) * wo;
                let col = &mut col[..k * t];
                build_columns(geo, &xs[ni * chw..(ni + 1) * chw], &ms[ni * d..(ni + 1) * d], 0, c, r0, r1, col);
                for gi in 0..geo.groups {
                    // SAFETY: rows gi·og.. of sample ni, positions r0·wo..r1·wo belong to this task only.
                    unsafe {
                        let dst = ys.ptr().add((ni * o + gi * og) * l + r0 * wo);
                        if let Some(bs) = bs {
                            for oi in 0..og {
                                std::slice::from_raw_parts_mut(dst.add(oi * l), t).fill(bs[gi * og + oi]);
                            }
                        }
                        gemm(
                            og, t, kg,
                            dst, 1, l as isize, bs.is_some(),
                            ws.as_ptr().add(gi * og * kg), 1, kg as isize,
                            col.as_ptr().add(gi * kg * t), 1, t as isize,
                            T::ONE, T::ONE, false, false, false, Parallelism::None,
                        );
                    }
                }
        },
    )?;
    Ok(y)
}

pub fn backward(
    geo: &Geometry,
    grad: &Tensor,
    input: &Tensor,
    weight: &Tensor,
    mix: &Tensor,
    mask: OutputMask,
) -> Result<(Tensor, Tensor, Tensor)> {
    match input.kind() {
        Kind::Float => backward_typed::<f32>(geo, grad, input, weight, mix, mask),
        Kind::Double => backward_typed::<f64>(geo, grad, input, weight, mix, mask),
        other => Err(CrnasError::type_("input", "float32 or float64 for the CPU kernels", format!("{other:?}"))),
    }
}

fn backward_typed<T: Elem>(
    geo: &Geometry,
    grad: &Tensor,
    input: &Tensor,
    weight: &Tensor,
    mix: &Tensor,
    mask: OutputMask,
) -> Result<(Tensor, Tensor, Tensor)> {
    let [need_dx, need_dw, need_dm] = mask;
    let (n, c, h, w, d) = (geo.n, geo.c, geo.h, geo.w, geo.d());
    let opts = (T::KIND, Device::Cpu);
    let dx = if need_dx { Tensor::f_zeros([n as i64, c as i64, h as i64, w as i64], opts)? } else { skipped(input)? };
    let dw = if need_dw { Tensor::f_zeros(weight.size(), opts)? } else { skipped(weight)? };

    let x = input.f_contiguous()?;
    let wt = weight.f_contiguous()?;
    let dy = grad.f_contiguous()?;
    let m = mix_rows(geo, mix)?;
    let args = BackwardArgs {
        geo,
        x: slice::<T>(&x)?,
        w: slice::<T>(&wt)?,
        mix: slice::<T>(&m)?,
        dy: slice::<T>(&dy)?,
    };
    let mut per_sample = vec![0.0f64; if need_dm { n * d } else { 0 }];
    let dw_ptr = need_dw.then(|| SharedMut(dw.data_ptr() as *mut T));
    let dx_ptr = need_dx.then(|| SharedMut(dx.data_ptr() as *mut T));
    gradient_pass(&args, dw_ptr, dx_ptr, need_dm, &mut per_sample)?;
    let dmix = if need_dm {
        if !geo.per_sample_mix {
            per_sample = (0..d).map(|di| (0..n).map(|ni| per_sample[ni * d + di]).sum()).collect();
        }
        let vals: Vec<T> = per_sample.into_iter().map(T::from_f64).collect();
        Tensor::f_from_slice(&vals)?.f_view(mix.size().as_slice())?
    } else {
        skipped(mix)?
    };
    Ok((dx, dw, dmix))
}

/// Blocks `(group, first, end)` of input channels (group-local indices) for the backward tasks,
/// about `BWD_TASKS_PER_THREAD` per thread, never straddling a group; and the block size.
fn channel_blocks(geo: &Geometry, threads: usize) -> (usize, Vec<(usize, usize, usize)>) {
    let cg = geo.cg();
    let per_group = (threads * BWD_TASKS_PER_THREAD).div_ceil(geo.groups).max(1);
    let cb = cg.div_ceil(per_group).max(1);
    let blocks = (0..geo.groups).flat_map(|gi| (0..cg).step_by(cb).map(move |c0| (gi, c0, (c0 + cb).min(cg)))).collect();
    (cb, blocks)
}

/// Contiguous views of the backward's inputs.
struct BackwardArgs<'a, T> {
    geo: &'a Geometry,
    x: &'a [T],
    w: &'a [T],
    mix: &'a [T],
    dy: &'a [T],
}

/// All requested gradients in one pass. One task per block of input channels; per (sample, tile
/// of output rows) it
/// - rebuilds the block's mixed columns and adds `dy · colsᵀ` into the block's columns of `dW`;
/// - computes the block's rows of the column gradient `W_gᵀ · dy` (one GEMM) and scatters them for
///   every dilation into `dx[:, block]` (`col2im`), accumulating `dmix = <dcol, im2col_d(x)>`.
///
/// The task owns `dW[:, block]` and `dx[:, block]`, so nothing is shared but the `dmix` partial
/// sums, kept per task and reduced in task order (deterministic).
fn gradient_pass<T: Elem>(
    a: &BackwardArgs<T>,
    dw: Option<SharedMut<T>>,
    dx: Option<SharedMut<T>>,
    need_dm: bool,
    per_sample: &mut [f64],
) -> Result<()> {
    let geo = a.geo;
    let (n, c, h, w, o, ho, wo, d) = (geo.n, geo.c, geo.h, geo.w, geo.o, geo.ho(), geo.wo(), geo.d());
    let (cg, og, kg, l, chw) = (geo.cg(), geo.og(), geo.kg(), ho * wo, c * h * w);
    let threads = num_threads();
    let (cb, blocks) = channel_blocks(geo, threads);
    let rows = tile_rows(geo, cb * 9, BWD_TILE_ELEMS, 0);
    let tiles = ho.div_ceil(rows);
    let tile = cb * 9 * rows * wo;
    let run_dcol = dx.is_some() || need_dm;
    // One tile buffer per thread serves both the columns (dead once dW has them) and the column gradient.
    let mut buffer = scratch_tensor::<T>(threads, tile)?;
    let scratch = Scratch::<T>::new(&mut buffer, threads, tile);
    let acc_len = if need_dm { n * d } else { 0 };
    // dmix partial sums per task, reduced in task order so the result is deterministic.
    let mut partials = vec![0.0f64; blocks.len() * acc_len];
    let partials_ptr = SharedMut(partials.as_mut_ptr());
    for_each_task(threads, blocks.len(), || scratch.take(), |buf, task| {
        let (gi, c0l, c1l) = blocks[task];
        let kb = (c1l - c0l) * 9;
        let (c0, c1) = (gi * cg + c0l, gi * cg + c1l);
        // SAFETY: task `task` owns partials[task·acc_len .. (task+1)·acc_len].
        let acc = unsafe { std::slice::from_raw_parts_mut(partials_ptr.ptr().add(task * acc_len), acc_len) };
        for ni in 0..n {
            let (x_n, mix_n) = (&a.x[ni * chw..(ni + 1) * chw], &a.mix[ni * d..(ni + 1) * d]);
            for ti in 0..tiles {
                let (r0, r1) = (ti * rows, ((ti + 1) * rows).min(ho));
                let t = (r1 - r0) * wo;
                // SAFETY: the dy tile is inside the gradient (shapes validated).
                let dy_tile = unsafe { a.dy.as_ptr().add((ni * o + gi * og) * l + r0 * wo) };
                if let Some(dw) = dw {
                    let col = &mut buf[..kb * t];
                    build_columns(geo, x_n, mix_n, c0, c1, r0, r1, col);
                    // SAFETY: dW[gi·og.., c0l·9..c1l·9] belongs to this task only.
                    unsafe {
                        gemm(
                            og, kb, t,
                            dw.ptr().add(gi * og * kg + c0l * 9), 1, kg as isize, true,
                            dy_tile, 1, l as isize,
                            col.as_ptr(), t as isize, 1,
                            T::ONE, T::ONE, false, false, false, Parallelism::None,
                        );
                    }
                }
                if run_dcol {
                    let dcol = &mut buf[..kb * t];
                    // SAFETY: all pointers stay inside their buffers (shapes validated).
                    unsafe {
                        gemm(
                            kb, t, og,
                            dcol.as_mut_ptr(), 1, t as isize, false,
                            a.w.as_ptr().add(gi * og * kg + c0l * 9), kg as isize, 1,
                            dy_tile, 1, l as isize,
                            T::ZERO, T::ONE, false, false, false, Parallelism::None,
                        );
                    }
                    // SAFETY: dx[ni, c0..c1] belongs to this task only.
                    let dx_n = dx.map(|p| SharedMut(unsafe { p.ptr().add(ni * chw) }));
                    let acc_n = need_dm.then(|| &mut acc[ni * d..(ni + 1) * d]);
                    scatter_columns(geo, x_n, mix_n, dcol, c0, c1, r0, r1, dx_n, acc_n);
                }
            }
        }
    })?;
    if acc_len > 0 {
        for part in partials.chunks(acc_len) {
            per_sample.iter_mut().zip(part).for_each(|(total, p)| *total += p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::valid_range;

    #[test]
    fn valid_range_matches_brute_force() {
        for len_in in 1..12usize {
            for s in 1..4usize {
                let len_out = (len_in - 1) / s + 1;
                for off in -5isize..6 {
                    let brute: Vec<usize> =
                        (0..len_out).filter(|&o| (o * s) as isize + off >= 0 && ((o * s) as isize + off) < len_in as isize).collect();
                    let (lo, hi) = valid_range(off, s, len_in, len_out);
                    assert_eq!((lo..hi).collect::<Vec<_>>(), brute, "len_in={len_in} s={s} off={off}");
                }
            }
        }
    }
}
