//! `Architecture`: the single source of truth for a CR-NAS backbone (docs/design.md#architectures).
//!
//! An architecture is a family (the block type and channel plan), the number of blocks in each
//! of the four resolution stages C2..C5 (strides 4, 8, 16, 32), one dilation per block for the
//! searched 3×3 convolution, and a width multiplier. [`Architecture::layout`] expands it into
//! concrete layers; the Python models, the FLOPs accountant and the samplers all read that
//! layout, so nothing else re-describes a network.

use crate::error::{ensure, CrnasError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Dilations a searched 3×3 convolution may take (docs/design.md#operation-space).
pub const DILATIONS: [usize; 3] = [1, 2, 3];

/// Names of the architectures published in the paper (spec §5.1), for [`Architecture::paper`].
pub const PAPER_ARCHITECTURES: [&str; 2] = ["scr_resnet50", "cr_resnet50"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Family {
    #[serde(rename = "resnet18")]
    Resnet18,
    #[serde(rename = "resnet50")]
    Resnet50,
    #[serde(rename = "resnet101")]
    Resnet101,
    #[serde(rename = "resnext50_32x4d")]
    Resnext50,
    #[serde(rename = "resnext101_32x4d")]
    Resnext101,
    #[serde(rename = "mobilenet_v2")]
    MobilenetV2,
}

impl Family {
    pub const ALL: [Family; 6] =
        [Family::Resnet18, Family::Resnet50, Family::Resnet101, Family::Resnext50, Family::Resnext101, Family::MobilenetV2];

    pub fn name(self) -> &'static str {
        match self {
            Family::Resnet18 => "resnet18",
            Family::Resnet50 => "resnet50",
            Family::Resnet101 => "resnet101",
            Family::Resnext50 => "resnext50_32x4d",
            Family::Resnext101 => "resnext101_32x4d",
            Family::MobilenetV2 => "mobilenet_v2",
        }
    }

    pub fn parse(name: &str) -> Result<Family> {
        Family::ALL.into_iter().find(|f| f.name() == name).ok_or_else(|| {
            CrnasError::value("family", format!("one of {}", Family::ALL.map(|f| f.name()).join(", ")), format!("{name:?}"))
        })
    }

    /// Blocks per stage of the reference network (torchvision's depths; MobileNetV2: docs/design.md#families).
    pub fn baseline_blocks(self) -> [usize; 4] {
        match self {
            Family::Resnet18 => [2, 2, 2, 2],
            Family::Resnet50 | Family::Resnext50 => [3, 4, 6, 3],
            Family::Resnet101 | Family::Resnext101 => [3, 4, 23, 3],
            Family::MobilenetV2 => [2, 3, 7, 4],
        }
    }

    /// Fewest blocks a stage can hold: MobileNetV2's C4 and C5 have two channel groups each.
    pub fn min_blocks(self) -> [usize; 4] {
        match self {
            Family::MobilenetV2 => [1, 1, 2, 2],
            _ => [1, 1, 1, 1],
        }
    }

    pub fn is_mobilenet(self) -> bool {
        self == Family::MobilenetV2
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A backbone: family, blocks per stage, one dilation per block, width multiplier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    pub family: Family,
    pub blocks: Vec<usize>,
    /// Empty in JSON means all 1 (filled by `from_json`).
    #[serde(default)]
    pub dilations: Vec<usize>,
    #[serde(default = "one")]
    pub width: f64,
}

fn one() -> f64 {
    1.0
}

impl Architecture {
    /// Build and validate. `dilations = None` means all 1.
    pub fn new(family: Family, blocks: Vec<usize>, dilations: Option<Vec<usize>>, width: f64) -> Result<Self> {
        let total: usize = blocks.iter().sum();
        let arch = Architecture { family, dilations: dilations.unwrap_or_else(|| vec![1; total]), blocks, width };
        arch.validate()?;
        Ok(arch)
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.blocks.len() == 4,
            CrnasError::value("blocks", "4 block counts [C2, C3, C4, C5]", format!("{} values {:?}", self.blocks.len(), self.blocks))
        );
        let min = self.family.min_blocks();
        for (i, (&b, &m)) in self.blocks.iter().zip(&min).enumerate() {
            ensure!(
                b >= m,
                CrnasError::value(format!("blocks[{i}]"), format!("at least {m} block(s) in stage C{} of {}", i + 2, self.family), b)
            );
            ensure!(b <= 1000, CrnasError::value(format!("blocks[{i}]"), "at most 1000 blocks", b));
        }
        let total: usize = self.blocks.iter().sum();
        ensure!(
            self.dilations.len() == total,
            CrnasError::value(
                "dilations",
                format!("one dilation per block ({total} for blocks {:?})", self.blocks),
                format!("{} values", self.dilations.len())
            )
        );
        for (i, d) in self.dilations.iter().enumerate() {
            ensure!(DILATIONS.contains(d), CrnasError::value(format!("dilations[{i}]"), "one of 1, 2, 3", d));
        }
        ensure!(
            self.width.is_finite() && self.width > 0.0 && self.width <= 16.0,
            CrnasError::value("width", "a multiplier in (0, 16]", self.width)
        );
        Ok(())
    }

    /// torchvision's reference network of the family, all dilations 1.
    pub fn baseline(family: Family) -> Self {
        Architecture::new(family, family.baseline_blocks().to_vec(), None, 1.0).expect("baseline is valid")
    }

    /// The architectures published in the paper (docs/design.md#published-architectures): `scr_resnet50` and `cr_resnet50`.
    pub fn paper(name: &str) -> Result<Self> {
        match name {
            "scr_resnet50" => Architecture::new(Family::Resnet50, vec![1, 3, 5, 7], None, 1.0),
            "cr_resnet50" => Architecture::new(
                Family::Resnet50,
                vec![1, 3, 5, 7],
                Some(vec![1, 1, 2, 1, 1, 1, 2, 3, 1, 1, 2, 1, 3, 2, 2, 3]),
                1.0,
            ),
            other => Err(CrnasError::value(
                "name",
                format!("one of {}", PAPER_ARCHITECTURES.map(|n| format!("'{n}'")).join(", ")),
                format!("{other:?}"),
            )),
        }
    }

    pub fn num_blocks(&self) -> usize {
        self.blocks.iter().sum()
    }

    /// Dilations of stage `i` (0 = C2).
    pub fn stage_dilations(&self, i: usize) -> &[usize] {
        let start: usize = self.blocks[..i].iter().sum();
        &self.dilations[start..start + self.blocks[i]]
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an Architecture always serialises")
    }

    /// Parse and validate; a missing `dilations` means all 1, a missing `width` 1.0.
    pub fn from_json(text: &str) -> Result<Self> {
        Architecture::completed(serde_json::from_str(text)?)
    }

    /// A deserialised architecture with its defaults filled in (empty `dilations`: all 1), validated.
    pub fn completed(mut arch: Architecture) -> Result<Self> {
        if arch.dilations.is_empty() {
            arch.dilations = vec![1; arch.blocks.iter().sum()];
        }
        arch.validate()?;
        Ok(arch)
    }

    /// Expand into concrete layers (channels, strides, dilations) for this width.
    pub fn layout(&self) -> Layout {
        match self.family {
            Family::MobilenetV2 => mobilenet_layout(self),
            _ => resnet_layout(self),
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut stages = Vec::new();
        for i in 0..4 {
            stages.push(self.stage_dilations(i).iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" "));
        }
        write!(f, "Architecture({}, blocks={:?}, dilations={}", self.family, self.blocks, stages.join(" | "))?;
        if self.width != 1.0 {
            write!(f, ", width={}", self.width)?;
        }
        write!(f, ")")
    }
}

/// One block of a stage. Field names follow torchvision's constructors.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// ResNet18 BasicBlock: `conv1` 3×3 (stride), `conv2` 3×3 (searched dilation).
    Basic { inplanes: usize, planes: usize, stride: usize, dilation: usize, downsample: bool },
    /// Bottleneck (torchvision V1.5, stride on the 3×3): `conv1` 1×1, `conv2` 3×3 (stride, groups,
    /// searched dilation), `conv3` 1×1 to `planes · 4`.
    Bottleneck { inplanes: usize, width: usize, planes: usize, stride: usize, groups: usize, dilation: usize, downsample: bool },
    /// MobileNetV2 inverted residual: optional 1×1 expansion, 3×3 depthwise (stride, searched
    /// dilation), 1×1 projection; residual when stride 1 and `inp == oup`.
    InvertedResidual { inp: usize, hidden: usize, oup: usize, stride: usize, dilation: usize },
}

impl Block {
    pub fn out_channels(&self) -> usize {
        match *self {
            Block::Basic { planes, .. } => planes,
            Block::Bottleneck { planes, .. } => planes * 4,
            Block::InvertedResidual { oup, .. } => oup,
        }
    }
}

/// The stem before C2.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Stem {
    /// `conv1` 7×7 stride 2 (3 → `channels`), BN, ReLU, 3×3 max-pool stride 2.
    Resnet { channels: usize },
    /// `features.0`: 3×3 stride-2 conv (3 → `channels`), then `features.1`, an inverted residual
    /// without expansion (the stride-2 part that precedes C2).
    MobilenetV2 { channels: usize, first: Block },
}

/// The expanded network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layout {
    pub family: Family,
    pub stem: Stem,
    /// Blocks of C2..C5.
    pub stages: Vec<Vec<Block>>,
    /// Output channels of C2..C5 (MobileNetV2's C5 ends with `last_conv`).
    pub stage_channels: Vec<usize>,
    /// MobileNetV2's final 1×1 conv `(in, out)` (`features[-1]`), part of C5.
    pub last_conv: Option<(usize, usize)>,
    /// Input features of the classifier.
    pub num_features: usize,
}

fn scaled(channels: usize, width: f64) -> usize {
    ((channels as f64 * width).round() as usize).max(1)
}

fn resnet_layout(arch: &Architecture) -> Layout {
    let w = arch.width;
    let (bottleneck, groups, base_width) = match arch.family {
        Family::Resnet18 => (false, 1, 64),
        Family::Resnet50 | Family::Resnet101 => (true, 1, 64),
        Family::Resnext50 | Family::Resnext101 => (true, 32, 4),
        Family::MobilenetV2 => unreachable!("resnet_layout on MobileNetV2"),
    };
    let stem = scaled(64, w);
    let mut inplanes = stem;
    let mut stages = Vec::new();
    let mut stage_channels = Vec::new();
    for (i, &count) in arch.blocks.iter().enumerate() {
        let planes = scaled(64 << i, w);
        let stride = if i == 0 { 1 } else { 2 };
        let dilations = arch.stage_dilations(i);
        let mut blocks = Vec::with_capacity(count);
        for (j, &dilation) in dilations.iter().enumerate() {
            let s = if j == 0 { stride } else { 1 };
            let block = if bottleneck {
                // torchvision: width = planes · base_width / 64 · groups. ResNeXt keeps its 32
                // groups at any width multiplier and scales the group width instead.
                let width = if groups == 1 { planes } else { groups * ((base_width << i) as f64 * w).round().max(1.0) as usize };
                Block::Bottleneck { inplanes, width, planes, stride: s, groups, dilation, downsample: j == 0 && (s != 1 || inplanes != planes * 4) }
            } else {
                Block::Basic { inplanes, planes, stride: s, dilation, downsample: j == 0 && (s != 1 || inplanes != planes) }
            };
            inplanes = block.out_channels();
            blocks.push(block);
        }
        stage_channels.push(inplanes);
        stages.push(blocks);
    }
    Layout { family: arch.family, stem: Stem::Resnet { channels: stem }, stages, stage_channels, last_conv: None, num_features: inplanes }
}

/// torchvision's `_make_divisible`: round to the nearest multiple of `divisor`, never more than 10% down.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut new_v = ((v + d / 2.0) / d).floor().max(1.0) * d;
    if new_v < 0.9 * v {
        new_v += d;
    }
    new_v as usize
}

/// MobileNetV2's channel groups per stage: `(expand ratio, channels, baseline count)`.
const MBV2_STAGES: [&[(usize, usize, usize)]; 4] =
    [&[(6, 24, 2)], &[(6, 32, 3)], &[(6, 64, 4), (6, 96, 3)], &[(6, 160, 3), (6, 320, 1)]];

/// Blocks of each channel group when a MobileNetV2 stage holds `count` blocks: the last group gets
/// its baseline share of `count` (rounded half up, at least 1), the first group the rest (at least 1).
pub fn mobilenet_group_counts(stage: usize, count: usize) -> Vec<usize> {
    let groups = MBV2_STAGES[stage];
    if groups.len() == 1 {
        return vec![count];
    }
    let base_total: usize = groups.iter().map(|g| g.2).sum();
    let base_last = groups[1].2;
    let last = ((count * base_last * 2 + base_total) / (2 * base_total)).clamp(1, count - 1);
    vec![count - last, last]
}

fn mobilenet_layout(arch: &Architecture) -> Layout {
    let w = arch.width;
    let ch = |c: usize| make_divisible(c as f64 * w, 8);
    let input = ch(32);
    let first_out = ch(16);
    let first = Block::InvertedResidual { inp: input, hidden: input, oup: first_out, stride: 1, dilation: 1 };
    let mut inp = first_out;
    let mut stages = Vec::new();
    let mut stage_channels = Vec::new();
    for (i, &count) in arch.blocks.iter().enumerate() {
        let dilations = arch.stage_dilations(i);
        let mut blocks = Vec::with_capacity(count);
        let mut k = 0;
        for (g, (&(t, c, _), n)) in MBV2_STAGES[i].iter().zip(mobilenet_group_counts(i, count)).enumerate() {
            let oup = ch(c);
            for j in 0..n {
                // The first group's first block downsamples (C4's 96-channel group keeps stride 1).
                let stride = if g == 0 && j == 0 { 2 } else { 1 };
                blocks.push(Block::InvertedResidual { inp, hidden: inp * t, oup, stride, dilation: dilations[k] });
                inp = oup;
                k += 1;
            }
        }
        stage_channels.push(inp);
        stages.push(blocks);
    }
    let last = make_divisible(1280.0 * w.max(1.0), 8);
    *stage_channels.last_mut().expect("four stages") = last;
    Layout {
        family: arch.family,
        stem: Stem::MobilenetV2 { channels: input, first },
        stages,
        stage_channels,
        last_conv: Some((inp, last)),
        num_features: last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_architectures() {
        let cr = Architecture::paper("cr_resnet50").unwrap();
        assert_eq!(cr.blocks, [1, 3, 5, 7]);
        assert_eq!(cr.stage_dilations(3), [1, 2, 1, 3, 2, 2, 3]);
        assert_eq!(cr.dilations.iter().filter(|&&d| d == 1).count(), 8);
        assert_eq!(cr.to_string(), "Architecture(resnet50, blocks=[1, 3, 5, 7], dilations=1 | 1 2 1 | 1 1 2 3 1 | 1 2 1 3 2 2 3)");
        assert!(Architecture::paper("cr_resnet101").is_err());
        assert!(PAPER_ARCHITECTURES.iter().all(|name| Architecture::paper(name).is_ok()));
    }

    #[test]
    fn json_round_trip_and_validation() {
        let a = Architecture::new(Family::Resnext50, vec![2, 3, 5, 6], None, 0.25).unwrap();
        assert_eq!(Architecture::from_json(&a.to_json()).unwrap(), a);
        assert!(Architecture::from_json(r#"{"family":"resnet50","blocks":[1,2,3],"dilations":[1,1,1,1,1,1]}"#).is_err());
        assert!(Architecture::from_json(r#"{"family":"vgg","blocks":[1,1,1,1],"dilations":[1,1,1,1]}"#).is_err());
        let e = Architecture::new(Family::Resnet50, vec![1, 0, 5, 7], None, 1.0).unwrap_err();
        assert_eq!(e.to_string(), "blocks[1]: expected at least 1 block(s) in stage C3 of resnet50, got 0");
        let e = Architecture::new(Family::Resnet50, vec![1, 1, 1, 1], Some(vec![1, 4, 1, 1]), 1.0).unwrap_err();
        assert_eq!(e.to_string(), "dilations[1]: expected one of 1, 2, 3, got 4");
    }

    #[test]
    fn resnet50_layout_matches_torchvision() {
        let l = Architecture::baseline(Family::Resnet50).layout();
        assert_eq!(l.stage_channels, [256, 512, 1024, 2048]);
        assert_eq!(
            l.stages[1][0],
            Block::Bottleneck { inplanes: 256, width: 128, planes: 128, stride: 2, groups: 1, dilation: 1, downsample: true }
        );
        let x = Architecture::baseline(Family::Resnext50).layout();
        assert!(matches!(x.stages[3][0], Block::Bottleneck { width: 1024, groups: 32, .. }));
    }

    #[test]
    fn mobilenet_groups() {
        assert_eq!(mobilenet_group_counts(2, 7), [4, 3]);
        assert_eq!(mobilenet_group_counts(2, 2), [1, 1]);
        assert_eq!(mobilenet_group_counts(3, 4), [3, 1]);
        assert_eq!(mobilenet_group_counts(3, 9), [7, 2]);
        let l = Architecture::baseline(Family::MobilenetV2).layout();
        let outs: Vec<usize> = l.stages.iter().flatten().map(Block::out_channels).collect();
        assert_eq!(outs, [24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320]);
        assert_eq!(l.stage_channels, [24, 32, 96, 1280]);
    }
}
