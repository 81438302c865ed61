//! Search spaces and samplers (docs/design.md#search-spaces).
//!
//! - [`StageSpace`]: block counts per stage drawn from per-stage choice sets, constrained by a
//!   budget (a total block count, or MACs within a tolerance of the baseline's). Feasible
//!   allocations are enumerated once; sampling draws uniform indices into that list, so it is
//!   exactly uniform (counting, not rejection) and reproducible from a seed.
//! - [`Sampling`]: uniform over the feasible allocations (the paper's); `balanced`: the weights
//!   that make each stage's depth as close to uniform as the budget allows (maximum total entropy of
//!   the per-stage depth distributions; FairNAS-style per-stage balance); or `independent`: each
//!   stage's depth uniform over its feasible depths, drawn independently, so the budget is not kept
//!   while the supernet trains (every depth of every stage drawn equally often; the search still
//!   scores feasible allocations only).
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

/// How a stage supernet draws an allocation per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Every feasible allocation equally likely.
    Uniform,
    /// Each stage's depth as close to uniform over its feasible depths as the space allows.
    Balanced,
    /// Each stage's depth uniform over its feasible depths, independently of the other stages: draws
    /// fall outside the budget (ResNet50: 23 blocks on average against 16).
    Independent,
}

impl Sampling {
    pub const ALL: [Sampling; 3] = [Sampling::Uniform, Sampling::Balanced, Sampling::Independent];

    pub fn name(self) -> &'static str {
        match self {
            Sampling::Uniform => "uniform",
            Sampling::Balanced => "balanced",
            Sampling::Independent => "independent",
        }
    }

    pub fn parse(name: &str) -> Result<Sampling> {
        Sampling::ALL.into_iter().find(|s| s.name() == name).ok_or_else(|| {
            CrnasError::value("sampling", format!("one of {}", Sampling::ALL.map(|s| s.name()).join(", ")), format!("{name:?}"))
        })
    }
}

/// Most steps of the entropic mirror ascent behind [`Sampling::Balanced`]; it stops earlier once the
/// optimality condition holds to 1e-12.
const BALANCE_STEPS: usize = 20_000;

/// Weights over `allocations` (summing to 1) that maximise the total entropy of the four per-stage
/// depth distributions: each stage's depth as close to uniform as the budget allows (exactly uniform
/// is impossible under a block budget whenever the uniform depths' means sum past the budget, as
/// they do for ResNet50: 5.5 + 5.5 + 6 + 6 = 23 > 16 blocks).
///
/// Entropic mirror ascent from uniform weights, `w_a ← w_a · Π_s m_s(a_s)^(-η)` with `m_s` the
/// stage-`s` depth marginal (the gradient of Σ_s H(m_s) is −Σ_s log m_s(a_s) − 4); at the optimum
/// Σ_s log m_s(a_s) is the same for every allocation with positive weight.
pub fn balanced_weights(allocations: &[[usize; 4]]) -> Vec<f64> {
    let n = allocations.len();
    let max_depth = allocations.iter().flat_map(|a| a.iter().copied()).max().unwrap_or(0);
    let mut w = vec![1.0 / n as f64; n];
    for _ in 0..BALANCE_STEPS {
        let log_marginal = stage_log_marginals(allocations, &w, max_depth);
        let g: Vec<f64> = allocations.iter().map(|a| (0..4).map(|s| log_marginal[s][a[s]]).sum()).collect();
        let (lo, hi) = g.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        if hi - lo < 1e-12 {
            break;
        }
        w.iter_mut().zip(&g).for_each(|(wi, gi)| *wi *= (-0.5 * (gi - lo)).exp());
        let total: f64 = w.iter().sum();
        w.iter_mut().for_each(|wi| *wi /= total);
    }
    w
}

/// `log P(depth of stage s = d)` under weights `w`, indexed `[s][d]` (−∞ where no weight).
fn stage_log_marginals(allocations: &[[usize; 4]], w: &[f64], max_depth: usize) -> Vec<Vec<f64>> {
    (0..4)
        .map(|s| {
            let mut m = vec![0.0; max_depth + 1];
            allocations.iter().zip(w).for_each(|(a, wi)| m[a[s]] += wi);
            m.into_iter().map(f64::ln).collect()
        })
        .collect()
}

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

    /// The probability of each allocation (in [`Self::allocations`] order) under `sampling`. Under
    /// [`Sampling::Independent`] they sum to the chance that a draw is feasible (below 1).
    pub fn weights(&self, sampling: Sampling) -> Vec<f64> {
        match sampling {
            Sampling::Uniform => vec![1.0 / self.len() as f64; self.len()],
            Sampling::Balanced => balanced_weights(&self.allocations),
            Sampling::Independent => {
                let p: f64 = self.feasible_depths().iter().map(|d| 1.0 / d.len() as f64).product();
                vec![p; self.len()]
            }
        }
    }

    /// Each stage's depths that occur in at least one feasible allocation, ascending.
    pub fn feasible_depths(&self) -> [Vec<usize>; 4] {
        std::array::from_fn(|s| {
            let mut depths: Vec<usize> = self.allocations.iter().map(|a| a[s]).collect();
            depths.sort_unstable();
            depths.dedup();
            depths
        })
    }

    /// `k` allocations drawn (with replacement) under `sampling`; [`Sampling::Uniform`] draws exactly
    /// what [`Self::sample`] draws for the same seed. [`Sampling::Independent`] draws block counts
    /// that need not be feasible (each stage's depth among its feasible depths).
    pub fn sample_with(&self, k: usize, seed: u64, sampling: Sampling) -> Result<Vec<[usize; 4]>> {
        if sampling == Sampling::Uniform {
            return self.sample(k, seed);
        }
        self.non_empty()?;
        if sampling == Sampling::Independent {
            let depths = self.feasible_depths();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            return Ok((0..k).map(|_| std::array::from_fn(|s| depths[s][rng.random_range(0..depths[s].len())])).collect());
        }
        let mut total = 0.0;
        let cumulative: Vec<f64> = self.weights(sampling).iter().map(|w| {
            total += w;
            total
        }).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Ok((0..k)
            .map(|_| {
                let r = rng.random::<f64>() * total;
                self.allocations[cumulative.partition_point(|&c| c <= r).min(self.len() - 1)]
            })
            .collect())
    }

    /// Few-shot splitting: the feasible allocations cut by `stage`'s depth into `parts` sub-spaces of
    /// contiguous depth ranges, as even in allocation count as possible (the largest part is as small
    /// as it can be; ties go to the split with the earliest cuts). Each part keeps this space's budget,
    /// family and width; its `choices[stage]` are the part's feasible depths. Together the parts hold
    /// every feasible allocation exactly once.
    pub fn split(&self, stage: usize, parts: usize) -> Result<Vec<StageSpace>> {
        ensure!(stage < 4, CrnasError::value("split_stage", "a stage index in 0..=3 (C2..C5)", stage));
        self.non_empty()?;
        // feasible depths of the stage and their allocation counts, in depth order
        let mut counted = std::collections::BTreeMap::<usize, usize>::new();
        for a in &self.allocations {
            *counted.entry(a[stage]).or_default() += 1;
        }
        let depths: Vec<(usize, usize)> = counted.into_iter().collect();
        ensure!(
            (1..=depths.len()).contains(&parts),
            CrnasError::value(
                "split_groups",
                format!("between 1 and the {} feasible depths of stage C{}", depths.len(), stage + 2),
                parts
            )
        );
        let counts: Vec<usize> = depths.iter().map(|(_, n)| *n).collect();
        let ends = min_max_partition(&counts, parts);
        let mut start = 0;
        Ok(ends
            .into_iter()
            .map(|end| {
                let mut choices = self.choices.clone();
                choices[stage] = depths[start..end].iter().map(|(d, _)| *d).collect();
                start = end;
                let allocations = self.allocations.iter().filter(|a| choices[stage].contains(&a[stage])).copied().collect();
                StageSpace { family: self.family, choices, budget: self.budget.clone(), width: self.width, allocations }
            })
            .collect())
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

/// The exclusive end of each of `parts` contiguous, non-empty groups of `counts` (`parts <=
/// counts.len()`) that minimise the largest group sum; among equal optima, the earliest cuts.
fn min_max_partition(counts: &[usize], parts: usize) -> Vec<usize> {
    let n = counts.len();
    let prefix: Vec<usize> = std::iter::once(0).chain(counts.iter().scan(0, |s, &c| {
        *s += c;
        Some(*s)
    })).collect();
    // best[k][i]: the smallest largest sum splitting counts[..i] into k groups; cut[k][i]: its last cut
    let mut best = vec![vec![usize::MAX; n + 1]; parts + 1];
    let mut cut = vec![vec![0; n + 1]; parts + 1];
    best[0][0] = 0;
    for k in 1..=parts {
        for i in k..=n {
            for j in (k - 1)..i {
                if best[k - 1][j] == usize::MAX {
                    continue;
                }
                let worst = best[k - 1][j].max(prefix[i] - prefix[j]);
                if worst < best[k][i] {
                    best[k][i] = worst;
                    cut[k][i] = j;
                }
            }
        }
    }
    let mut ends = vec![n];
    for k in (2..=parts).rev() {
        ends.push(cut[k][*ends.last().expect("non-empty")]);
    }
    ends.reverse();
    ends
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
    fn split_partitions_the_allocations_by_one_stage() {
        let s = StageSpace::paper(Family::Resnet50).unwrap();
        let parts = s.split(0, 3).unwrap();
        // C2's depths 1..10 hold 29, 27, 23, 19, 16, 14, 10, 7, 5, 3 allocations: the most even
        // contiguous cut into three is {1, 2} 56, {3, 4} 42, {5..10} 55
        let c2: Vec<Vec<usize>> = parts.iter().map(|p| p.choices[0].clone()).collect();
        assert_eq!(c2, vec![vec![1, 2], vec![3, 4], vec![5, 6, 7, 8, 9, 10]]);
        assert_eq!(parts.iter().map(StageSpace::len).collect::<Vec<_>>(), vec![56, 42, 55]);
        let mut all: Vec<[usize; 4]> = parts.iter().flat_map(|p| p.allocations().to_vec()).collect();
        all.sort_unstable();
        assert_eq!(all, s.allocations());
        for p in &parts {
            assert_eq!(p.budget, s.budget);
            assert_eq!(&p.choices[1..], &s.choices[1..]);
            // a part is the space its choices and budget define
            let rebuilt = StageSpace::new(p.family, p.choices.clone(), Some(16), None, MACS_INPUT_SIZE, 1.0).unwrap();
            assert_eq!(rebuilt.allocations(), p.allocations());
        }
        assert_eq!(s.split(2, 1).unwrap()[0].allocations(), s.allocations());
        assert_eq!(s.split(3, 7).unwrap().iter().map(|p| p.choices[3].len()).collect::<Vec<_>>(), vec![1; 7]);
        assert!(s.split(0, 11).is_err() && s.split(0, 0).is_err() && s.split(4, 2).is_err());
    }

    #[test]
    fn min_max_partition_is_optimal_and_contiguous() {
        assert_eq!(min_max_partition(&[5], 1), vec![1]);
        assert_eq!(min_max_partition(&[1, 1, 1, 1], 2), vec![2, 4]);
        assert_eq!(min_max_partition(&[9, 1, 1, 1], 2), vec![1, 4]);
        assert_eq!(min_max_partition(&[1, 2, 3], 3), vec![1, 2, 3]);
        // brute force over every pair of cuts
        let counts = [4, 7, 1, 8, 2, 6, 3];
        let ends = min_max_partition(&counts, 3);
        let worst = |a: usize, b: usize| counts[..a].iter().sum::<usize>().max(counts[a..b].iter().sum()).max(counts[b..].iter().sum());
        let optimum = (1..counts.len()).flat_map(|a| (a + 1..counts.len()).map(move |b| (a, b))).map(|(a, b)| worst(a, b)).min().unwrap();
        assert_eq!(worst(ends[0], ends[1]), optimum);
        assert_eq!(ends[2], counts.len());
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
    fn balanced_sampling_evens_out_each_stage() {
        let s = StageSpace::paper(Family::Resnet50).unwrap();
        let marginal = |w: &[f64], stage: usize, depth: usize| -> f64 {
            s.allocations().iter().zip(w).filter(|(a, _)| a[stage] == depth).map(|(_, w)| w).sum()
        };
        let entropy = |w: &[f64]| -> f64 {
            let mut h = 0.0;
            for (stage, choices) in RESNET_CHOICES.iter().enumerate() {
                for &d in choices.iter() {
                    let p = marginal(w, stage, d);
                    if p > 0.0 {
                        h -= p * p.ln();
                    }
                }
            }
            h
        };
        let uniform = s.weights(Sampling::Uniform);
        let balanced = s.weights(Sampling::Balanced);
        assert!((balanced.iter().sum::<f64>() - 1.0).abs() < 1e-12 && balanced.iter().all(|&w| w > 0.0));
        // optimality: Σ_s log m_s(a_s) equal over all allocations (all have positive weight here)
        let g: Vec<f64> = s.allocations().iter().map(|a| (0..4).map(|st| marginal(&balanced, st, a[st]).ln()).sum()).collect();
        let spread = g.iter().cloned().fold(f64::NEG_INFINITY, f64::max) - g.iter().cloned().fold(f64::INFINITY, f64::min);
        assert!(spread < 1e-9, "{spread}");
        // and no perturbation raises the entropy
        let h = entropy(&balanced);
        assert!(h > entropy(&uniform));
        for (i, j) in [(0, 152), (10, 80), (100, 3)] {
            let mut p = balanced.clone();
            p[i] += 1e-4;
            p[j] -= 1e-4;
            assert!(entropy(&p) < h);
        }
        // uniform: C2 = 10 in 3 of 153 allocations (2%); balanced: 3%
        assert!((marginal(&uniform, 0, 10) - 3.0 / 153.0).abs() < 1e-12);
        assert!((marginal(&balanced, 0, 10) - 0.030).abs() < 1e-3);
        assert_eq!(s.sample_with(50, 3, Sampling::Uniform).unwrap(), s.sample(50, 3).unwrap());
        let draws = s.sample_with(20_000, 5, Sampling::Balanced).unwrap();
        let shallow = draws.iter().filter(|a| a[0] == 1).count() as f64 / draws.len() as f64;
        assert!((shallow - marginal(&balanced, 0, 1)).abs() < 0.01, "{shallow}");
        assert!(draws.iter().all(|a| s.contains(a)));
        assert_eq!(Sampling::parse("balanced").unwrap(), Sampling::Balanced);
        assert!(Sampling::parse("fair").is_err());
    }

    #[test]
    fn independent_sampling_trains_every_feasible_depth_equally_often() {
        let s = StageSpace::paper(Family::Resnet50).unwrap();
        let depths = s.feasible_depths();
        assert_eq!(depths[0], (1..=10).collect::<Vec<_>>());
        assert_eq!(depths[2], vec![2, 3, 5, 6, 9, 11]); // C4 = 14 .. 23 fits no 16-block allocation
        assert_eq!(depths[3], vec![2, 3, 4, 6, 7, 9, 11]);
        let draws = s.sample_with(60_000, 11, Sampling::Independent).unwrap();
        assert_eq!(draws, s.sample_with(60_000, 11, Sampling::Independent).unwrap());
        for (stage, stage_depths) in depths.iter().enumerate() {
            for &d in stage_depths {
                let share = draws.iter().filter(|a| a[stage] == d).count() as f64 / draws.len() as f64;
                assert!((share - 1.0 / stage_depths.len() as f64).abs() < 0.01, "C{} = {d}: {share}", stage + 2);
            }
        }
        // the budget is not kept: 5.5 + 5.5 + 6 + 6 = 23 blocks on average
        let mean = draws.iter().map(|a| a.iter().sum::<usize>()).sum::<usize>() as f64 / draws.len() as f64;
        assert!((mean - 23.0).abs() < 0.1, "{mean}");
        let feasible = draws.iter().filter(|a| s.contains(*a)).count() as f64 / draws.len() as f64;
        let w = s.weights(Sampling::Independent);
        assert!((feasible - w.iter().sum::<f64>()).abs() < 0.005, "{feasible}");
        assert!((w[0] - 1.0 / (10.0 * 10.0 * 6.0 * 7.0)).abs() < 1e-15);
        assert_eq!(Sampling::parse("independent").unwrap(), Sampling::Independent);
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
