//! Search spaces and samplers (docs/design.md#search-spaces).
//!
//! - [`StageSpace`]: block counts per stage drawn from per-stage choice sets, constrained by a
//!   budget (a total block count, or MACs within a tolerance of the baseline's). Feasible
//!   allocations are enumerated once; sampling draws uniform indices into that list, so it is
//!   exactly uniform (counting, not rejection) and reproducible from a seed.
//! - The joint space (allocation × one dilation per block) and uniform sampling from it.
//! - [`sample_paths`]: per-sample one-hot dilation choices `[B, N, D]` for a batch, as a tensor on
//!   the requested device — the `mix` input of the fused convolution.

use crate::arch::{Architecture, Family, DILATIONS};
use crate::error::{ensure, CrnasError, Result};
use crate::flops::{count_many, total_macs, Convention};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tch::{Device, Kind, Tensor};

/// The paper's choice sets for the ResNet series, reused for ResNeXt (docs/design.md#stage-space).
pub const RESNET_CHOICES: [&[usize]; 4] =
    [&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], &[2, 3, 5, 6, 9, 11, 14, 17, 20, 23], &[2, 3, 4, 6, 7, 9, 11, 13, 15, 17]];

/// crnas's MobileNetV2 choice sets (docs/design.md#stage-space): around the baseline [2, 3, 7, 4]; C4 and C5
/// need two blocks (one per channel group).
pub const MOBILENET_CHOICES: [&[usize]; 4] = [&[1, 2, 3, 4, 5], &[1, 2, 3, 4, 5, 6], &[2, 3, 4, 5, 6, 7, 8, 9, 10, 11], &[2, 3, 4, 5, 6, 7, 8]];

/// The input size at which MACs are compared: a MACs budget's default, the search's reports (the paper's 800×1088).
pub const MACS_INPUT_SIZE: (usize, usize) = (800, 1088);

/// What an allocation must satisfy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Budget {
    /// The total number of blocks equals `total` (the ResNet series: conv MACs are then equal too).
    Blocks { total: usize },
    /// Backbone MACs at `input_size` within `tolerance` (relative) of `target`.
    Macs { target: u64, tolerance: f64, input_size: (usize, usize) },
}

#[derive(Debug, Clone, Serialize)]
pub struct StageSpace {
    pub family: Family,
    pub choices: Vec<Vec<usize>>,
    pub budget: Budget,
    pub width: f64,
    /// Feasible allocations, in lexicographic order.
    #[serde(skip)]
    allocations: Vec<[usize; 4]>,
}

impl StageSpace {
    /// A space over `choices` with a block-count budget (`blocks`) or a MACs tolerance around the
    /// baseline's MACs at `input_size` (`macs_tolerance`); exactly one of the two.
    pub fn new(
        family: Family,
        choices: Vec<Vec<usize>>,
        blocks: Option<usize>,
        macs_tolerance: Option<f64>,
        input_size: (usize, usize),
        width: f64,
    ) -> Result<Self> {
        ensure!(
            choices.len() == 4,
            CrnasError::value("choices", "4 choice sets [C2, C3, C4, C5]", format!("{} sets", choices.len()))
        );
        let min = family.min_blocks();
        for (i, set) in choices.iter().enumerate() {
            ensure!(!set.is_empty(), CrnasError::value(format!("choices[{i}]"), "a non-empty set of block counts", "[]"));
            for &c in set {
                ensure!(
                    (min[i]..=1000).contains(&c),
                    CrnasError::value(format!("choices[{i}]"), format!("block counts in [{}, 1000] for stage C{} of {family}", min[i], i + 2), c)
                );
            }
        }
        let mut choices = choices;
        for set in &mut choices {
            set.sort_unstable();
            set.dedup();
        }
        // The baseline at this width (which validates the width).
        let base = Architecture::new(family, family.baseline_blocks().to_vec(), None, width)?;
        let product: usize = choices.iter().map(Vec::len).product();
        ensure!(product <= 10_000_000, CrnasError::value("choices", "at most 10^7 combinations", product));
        let budget = match (blocks, macs_tolerance) {
            (Some(total), None) => Budget::Blocks { total },
            (None, Some(tolerance)) => {
                ensure!(
                    tolerance.is_finite() && tolerance >= 0.0,
                    CrnasError::value("flops_tolerance", "a relative tolerance >= 0 (e.g. 0.01)", tolerance)
                );
                let target = total_macs(&base, input_size, None, &backbone_only())?;
                Budget::Macs { target, tolerance, input_size }
            }
            _ => {
                return Err(CrnasError::value(
                    "budget",
                    "exactly one of a block count (budget) or a MACs tolerance (flops_tolerance)",
                    format!("budget={blocks:?}, flops_tolerance={macs_tolerance:?}"),
                ))
            }
        };
        let mut space = StageSpace { family, choices, budget, width, allocations: Vec::new() };
        space.allocations = space.enumerate()?;
        Ok(space)
    }

    /// The paper's space for a family: the ResNet-series choice sets with the baseline's block
    /// count (ResNet/ResNeXt), or crnas's MobileNetV2 sets within ±1% of the baseline's MACs.
    pub fn paper(family: Family) -> Result<Self> {
        let to_vec = |sets: [&[usize]; 4]| sets.iter().map(|s| s.to_vec()).collect();
        if family.is_mobilenet() {
            StageSpace::new(family, to_vec(MOBILENET_CHOICES), None, Some(0.01), MACS_INPUT_SIZE, 1.0)
        } else {
            let total = family.baseline_blocks().iter().sum();
            StageSpace::new(family, to_vec(RESNET_CHOICES), Some(total), None, MACS_INPUT_SIZE, 1.0)
        }
    }

    fn all_combinations(&self) -> Vec<[usize; 4]> {
        let c = &self.choices;
        let mut out = Vec::with_capacity(c.iter().map(Vec::len).product());
        for &a in &c[0] {
            for &b in &c[1] {
                for &x in &c[2] {
                    for &y in &c[3] {
                        out.push([a, b, x, y]);
                    }
                }
            }
        }
        out
    }

    fn enumerate(&self) -> Result<Vec<[usize; 4]>> {
        let all = self.all_combinations();
        match self.budget {
            Budget::Blocks { total } => Ok(all.into_iter().filter(|a| a.iter().sum::<usize>() == total).collect()),
            Budget::Macs { target, tolerance, input_size } => {
                let archs: Vec<Architecture> = all.iter().map(|a| self.architecture(a, None)).collect::<Result<_>>()?;
                let macs = count_many(&archs, input_size, None, &backbone_only())?;
                let limit = tolerance * target as f64;
                Ok(all.into_iter().zip(macs).filter(|(_, m)| (*m as f64 - target as f64).abs() <= limit).map(|(a, _)| a).collect())
            }
        }
    }

    pub fn allocations(&self) -> &[[usize; 4]] {
        &self.allocations
    }

    pub fn len(&self) -> usize {
        self.allocations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.allocations.is_empty()
    }

    pub fn contains(&self, blocks: &[usize]) -> bool {
        blocks.len() == 4 && self.allocations.binary_search(&[blocks[0], blocks[1], blocks[2], blocks[3]]).is_ok()
    }

    /// The architecture for `blocks` at this space's width (dilations all 1 unless given).
    pub fn architecture(&self, blocks: &[usize], dilations: Option<Vec<usize>>) -> Result<Architecture> {
        Architecture::new(self.family, blocks.to_vec(), dilations, self.width)
    }

    fn non_empty(&self) -> Result<()> {
        ensure!(
            !self.is_empty(),
            CrnasError::value("space", "at least one feasible allocation", "none (loosen the budget or widen the choice sets)")
        );
        Ok(())
    }

    /// `k` allocations drawn uniformly (with replacement) from the feasible ones.
    pub fn sample(&self, k: usize, seed: u64) -> Result<Vec<[usize; 4]>> {
        self.non_empty()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Ok((0..k).map(|_| self.allocations[rng.random_range(0..self.len())]).collect())
    }

    /// Running totals over the allocations of their joint-space sizes, 3^(blocks) each (one
    /// dilation per block).
    fn cumulative_joint_sizes(&self) -> Result<Vec<u128>> {
        let mut total: u128 = 0;
        self.allocations
            .iter()
            .map(|a| {
                total = (DILATIONS.len() as u128)
                    .checked_pow(a.iter().sum::<usize>() as u32)
                    .and_then(|w| total.checked_add(w))
                    .ok_or_else(|| CrnasError::value("space", "a joint space smaller than 2^128", "an overflow"))?;
                Ok(total)
            })
            .collect()
    }

    /// Size of the joint space: Σ over allocations of 3^(blocks), one dilation per block.
    pub fn joint_size(&self) -> Result<u128> {
        Ok(self.cumulative_joint_sizes()?.last().copied().unwrap_or(0))
    }

    /// `k` architectures (allocation and dilations) drawn uniformly from the joint space.
    pub fn sample_architectures(&self, k: usize, seed: u64) -> Result<Vec<Architecture>> {
        self.non_empty()?;
        let cumulative = self.cumulative_joint_sizes()?;
        let total = *cumulative.last().expect("non-empty space");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..k)
            .map(|_| {
                let r = rng.random_range(0..total);
                let i = cumulative.partition_point(|&c| c <= r);
                let blocks = self.allocations[i];
                let n: usize = blocks.iter().sum();
                let dilations = (0..n).map(|_| DILATIONS[rng.random_range(0..DILATIONS.len())]).collect();
                self.architecture(&blocks, Some(dilations))
            })
            .collect()
    }
}

/// The convention for MACs budgets: backbone only, no classifier.
fn backbone_only() -> Convention {
    Convention { classifier: false, ..Convention::default() }
}

/// One-hot dilation paths `[blocks, batch, num_choices]` (float32) on `device`: uniform, or
/// drawn from `logits` (`[blocks, num_choices]` shared by the batch, or `[blocks, batch,
/// num_choices]`). Reproducible from `seed` on any device.
pub fn sample_paths(blocks: usize, batch: usize, num_choices: usize, seed: u64, logits: Option<&Tensor>, device: Device) -> Result<Tensor> {
    ensure!(num_choices >= 1, CrnasError::value("num_choices", "an integer >= 1", num_choices));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let total = blocks * batch;
    let indices: Vec<i64> = match logits {
        None => (0..total).map(|_| rng.random_range(0..num_choices) as i64).collect(),
        Some(l) => {
            let shared = l.size() == [blocks as i64, num_choices as i64];
            ensure!(
                shared || l.size() == [blocks as i64, batch as i64, num_choices as i64],
                CrnasError::value(
                    "logits",
                    format!("shape [{blocks}, {num_choices}] or [{blocks}, {batch}, {num_choices}]"),
                    format!("shape {:?}", l.size())
                )
            );
            ensure!(
                l.is_floating_point(),
                CrnasError::type_("logits", "a floating-point tensor", format!("{:?}", l.kind()).to_lowercase())
            );
            let probs = l.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?.f_softmax(-1, Kind::Double)?.f_contiguous()?;
            let p: Vec<f64> = Vec::<f64>::try_from(&probs.f_flatten(0, -1)?)?;
            ensure!(p.iter().all(|v| v.is_finite()), CrnasError::value("logits", "finite values", "NaN or infinity"));
            (0..total)
                .map(|i| {
                    let row = if shared { i / batch } else { i };
                    let probs = &p[row * num_choices..(row + 1) * num_choices];
                    let u: f64 = rng.random();
                    let mut acc = 0.0;
                    probs.iter().position(|&q| {
                        acc += q;
                        u < acc
                    })
                    .unwrap_or(num_choices - 1) as i64
                })
                .collect()
        }
    };
    let idx = Tensor::f_from_slice(&indices)?.f_view([blocks as i64, batch as i64])?.f_to_device(device)?;
    Ok(idx.f_one_hot(num_choices as i64)?.f_to_kind(Kind::Float)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_counts() {
        assert_eq!(StageSpace::paper(Family::Resnet18).unwrap().len(), 9);
        assert_eq!(StageSpace::paper(Family::Resnet50).unwrap().len(), 153);
        assert_eq!(StageSpace::paper(Family::Resnet101).unwrap().len(), 374);
        let r50 = StageSpace::paper(Family::Resnet50).unwrap();
        assert!(r50.contains(&[3, 4, 6, 3]) && r50.contains(&[1, 3, 5, 7]));
        assert_eq!(r50.joint_size().unwrap(), 153 * 3u128.pow(16));
    }

    #[test]
    fn sampling_is_reproducible_and_feasible() {
        let s = StageSpace::paper(Family::Resnet50).unwrap();
        let a = s.sample(100, 7).unwrap();
        assert_eq!(a, s.sample(100, 7).unwrap());
        assert_ne!(a, s.sample(100, 8).unwrap());
        assert!(a.iter().all(|b| s.contains(b)));
        for arch in s.sample_architectures(20, 3).unwrap() {
            assert!(s.contains(&arch.blocks));
        }
    }

    #[test]
    fn mobilenet_space_within_one_percent() {
        let s = StageSpace::paper(Family::MobilenetV2).unwrap();
        assert_eq!(s.len(), 49);
        assert!(s.contains(&[2, 3, 7, 4]));
        let Budget::Macs { target, .. } = s.budget else { panic!("MACs budget expected") };
        let macs = count_many(&s.allocations().iter().map(|a| s.architecture(a, None).unwrap()).collect::<Vec<_>>(), MACS_INPUT_SIZE, None, &backbone_only()).unwrap();
        assert!(macs.iter().all(|&m| (m as f64 / target as f64 - 1.0).abs() <= 0.01));
    }

    #[test]
    fn paths_are_one_hot() {
        let p = sample_paths(5, 4, 3, 0, None, Device::Cpu).unwrap();
        assert_eq!(p.size(), [5, 4, 3]);
        assert_eq!(p.sum(Kind::Float).double_value(&[]), 20.0);
        let logits = Tensor::from_slice(&[0.0f32, 0.0, 100.0]).view([1, 3]).repeat([5, 1]);
        let q = sample_paths(5, 4, 3, 0, Some(&logits), Device::Cpu).unwrap();
        assert_eq!(q.select(2, 2).sum(Kind::Float).double_value(&[]), 20.0);
    }
}
