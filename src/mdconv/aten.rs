//! Device-agnostic backend composed of ATen ops (`im2col`, batched `matmul`, `col2im`); this
//! is the CUDA path and the fallback for float16/bfloat16. The batch is processed in chunks so
//! the column buffer `[chunk, C·9, Ho·Wo]` stays within `CHUNK_ELEMS` elements (at least one sample).

use super::{skipped, Geometry, OutputMask};
use crate::error::Result;
use tch::Tensor;

const CHUNK_ELEMS: usize = 1 << 25;

/// Sample ranges `[s0, s1)` whose column buffers fit the chunk budget.
fn chunks(geo: &Geometry) -> Vec<(i64, i64)> {
    let per_sample = geo.c * 9 * geo.ho() * geo.wo();
    let step = (CHUNK_ELEMS / per_sample.max(1)).max(1);
    (0..geo.n).step_by(step).map(|s0| (s0 as i64, (s0 + step).min(geo.n) as i64)).collect()
}

/// `im2col` of one dilation: `[nc, C·9, Ho·Wo]`.
fn columns(geo: &Geometry, x: &Tensor, d: usize) -> Result<Tensor> {
    let (d, s) = (d as i64, geo.stride as i64);
    Ok(x.f_im2col([3, 3], [d, d], [d, d], [s, s])?)
}

/// `Σ_d mix[:, d] · im2col_d(x)`: `[nc, C·9, Ho·Wo]`.
fn mixed_columns(geo: &Geometry, x: &Tensor, mix: &Tensor) -> Result<Tensor> {
    let nc = x.size()[0];
    let mut acc: Option<Tensor> = None;
    for (di, &d) in geo.dilations.iter().enumerate() {
        let term = columns(geo, x, d)?.f_mul(&mix.f_select(1, di as i64)?.f_view([nc, 1, 1])?)?;
        acc = Some(match acc {
            None => term,
            Some(a) => a.f_add(&term)?,
        });
    }
    Ok(acc.expect("at least one dilation (validated)"))
}

fn sizes(geo: &Geometry) -> (i64, i64, i64, i64, i64) {
    (geo.groups as i64, geo.og() as i64, geo.kg() as i64, (geo.ho() * geo.wo()) as i64, geo.o as i64)
}

pub fn forward(geo: &Geometry, input: &Tensor, weight: &Tensor, mix: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (g, og, kg, l, o) = sizes(geo);
    let shape = [geo.n as i64, o, geo.ho() as i64, geo.wo() as i64];
    let mut y = if geo.n == 0 {
        Tensor::f_zeros(shape, (input.kind(), input.device()))?
    } else {
        let m = mix.f_expand([geo.n as i64, geo.d() as i64], false)?;
        let wg = weight.f_reshape([g, og, kg])?;
        let mut parts = Vec::new();
        for (s0, s1) in chunks(geo) {
            let nc = s1 - s0;
            let cols = mixed_columns(geo, &input.f_narrow(0, s0, nc)?, &m.f_narrow(0, s0, nc)?)?;
            parts.push(wg.f_matmul(&cols.f_view([nc, g, kg, l])?)?.f_reshape([nc, o, shape[2], shape[3]])?);
        }
        Tensor::f_cat(&parts, 0)?
    };
    if let Some(b) = bias {
        y = y.f_add(&b.f_view([1, o, 1, 1])?)?;
    }
    Ok(y.f_contiguous()?)
}

pub fn backward(
    geo: &Geometry,
    grad: &Tensor,
    input: &Tensor,
    weight: &Tensor,
    mix: &Tensor,
    mask: OutputMask,
) -> Result<(Tensor, Tensor, Tensor)> {
    let [need_dx, need_dw, need_dm] = mask;
    let (g, og, kg, l, _) = sizes(geo);
    let (n, c, h, w, d) = (geo.n as i64, geo.c as i64, geo.h as i64, geo.w as i64, geo.d() as i64);
    let opts = (input.kind(), input.device());
    let m = mix.f_expand([n, d], false)?;
    let wg = weight.f_reshape([g, og, kg])?;
    let mut dx_parts = Vec::new();
    let mut dm_parts = Vec::new();
    let mut dw = Tensor::f_zeros([g, og, kg], opts)?;
    for (s0, s1) in chunks(geo) {
        let nc = s1 - s0;
        let x = input.f_narrow(0, s0, nc)?;
        let mc = m.f_narrow(0, s0, nc)?;
        let dy = grad.f_narrow(0, s0, nc)?.f_reshape([nc, g, og, l])?;
        if need_dw {
            let cols = mixed_columns(geo, &x, &mc)?.f_view([nc, g, kg, l])?;
            dw = dw.f_add(&dy.f_matmul(&cols.f_transpose(2, 3)?)?.f_sum_dim_intlist([0i64].as_slice(), false, None)?)?;
        }
        if need_dx || need_dm {
            let dcol = wg.f_transpose(1, 2)?.f_matmul(&dy)?.f_reshape([nc, c * 9, l])?;
            let mut dx = Tensor::f_zeros([nc, c, h, w], opts)?;
            let mut dm = Vec::new();
            for (di, &dil) in geo.dilations.iter().enumerate() {
                let (dd, s) = (dil as i64, geo.stride as i64);
                if need_dx {
                    let scaled = dcol.f_mul(&mc.f_select(1, di as i64)?.f_view([nc, 1, 1])?)?;
                    dx = dx.f_add(&scaled.f_col2im([h, w], [3, 3], [dd, dd], [dd, dd], [s, s])?)?;
                }
                if need_dm {
                    let inner = dcol.f_mul(&columns(geo, &x, dil)?)?;
                    dm.push(inner.f_sum_dim_intlist([1i64, 2].as_slice(), false, None)?);
                }
            }
            dx_parts.push(dx);
            if need_dm {
                dm_parts.push(Tensor::f_stack(&dm, 1)?);
            }
        }
    }
    let dx = match (need_dx, dx_parts.is_empty()) {
        (false, _) => skipped(input)?,
        (true, true) => Tensor::f_zeros([n, c, h, w], opts)?,
        (true, false) => Tensor::f_cat(&dx_parts, 0)?,
    };
    let dw = if need_dw { dw.f_reshape(weight.size())? } else { skipped(weight)? };
    let dm = if need_dm {
        let per_sample = if dm_parts.is_empty() { Tensor::f_zeros([n, d], opts)? } else { Tensor::f_cat(&dm_parts, 0)? };
        if geo.per_sample_mix {
            per_sample
        } else {
            per_sample.f_sum_dim_intlist([0i64].as_slice(), false, None)?
        }
    } else {
        skipped(mix)?
    };
    Ok((dx, dw, dm))
}
