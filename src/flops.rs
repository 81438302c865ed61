//! FLOPs accountant: analytic multiply-accumulates (MACs) and parameter counts of an
//! [`Architecture`] at any input size, per layer, per stage and in total, alone or inside a
//! torchvision detector (convention in docs/flops.md).
//!
//! Convention: MACs of convolutions (`N·Cout·Hout·Wout·Cin/groups·k²`, also for transposed
//! convolutions per input position) and linear layers; BatchNorm, activations, pooling, upsampling
//! and additions are free, as in torchvision's `_ops` and fvcore. Output sizes follow PyTorch's
//! formulas exactly (odd sizes included). Parameters count weights, biases and norm affine
//! parameters, as `sum(p.numel() for p in model.parameters())` with `nn.BatchNorm2d`.

use crate::arch::{Architecture, Block, Layout, Stem};
use crate::error::{ensure, CrnasError, Result};
use rayon::prelude::*;
use serde::Serialize;

/// Where a layer sits in the network (serialised as its [`Part::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    Stem,
    C2,
    C3,
    C4,
    C5,
    Classifier,
    Fpn,
    Rpn,
    RoiBox,
    RoiMask,
    DenseHead,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Stem => "stem",
            Part::C2 => "C2",
            Part::C3 => "C3",
            Part::C4 => "C4",
            Part::C5 => "C5",
            Part::Classifier => "classifier",
            Part::Fpn => "fpn",
            Part::Rpn => "rpn",
            Part::RoiBox => "roi_box_head",
            Part::RoiMask => "roi_mask_head",
            Part::DenseHead => "dense_head",
        }
    }
    const STAGES: [Part; 4] = [Part::C2, Part::C3, Part::C4, Part::C5];
}

/// Detection models the accountant knows (torchvision's; serialised as their [`Detector::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detector {
    FasterRcnnFpn,
    MaskRcnnFpn,
    RetinanetFpn,
    FcosFpn,
}

/// Serialise as the `name()` string: one spelling for Python, JSON and tables.
macro_rules! serialize_as_name {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(self.name())
            }
        }
    )*};
}
serialize_as_name!(Part, Detector);

impl Detector {
    pub const ALL: [Detector; 4] = [Detector::FasterRcnnFpn, Detector::MaskRcnnFpn, Detector::RetinanetFpn, Detector::FcosFpn];

    pub fn name(self) -> &'static str {
        match self {
            Detector::FasterRcnnFpn => "faster_rcnn_fpn",
            Detector::MaskRcnnFpn => "mask_rcnn_fpn",
            Detector::RetinanetFpn => "retinanet_fpn",
            Detector::FcosFpn => "fcos_fpn",
        }
    }

    pub fn parse(name: &str) -> Result<Detector> {
        Detector::ALL.into_iter().find(|d| d.name() == name).ok_or_else(|| {
            CrnasError::value("detector", format!("None or one of {}", Detector::ALL.map(|d| d.name()).join(", ")), format!("{name:?}"))
        })
    }
}

/// The counting convention. The defaults reproduce the paper's Faster R-CNN + FPN figures at
/// 800×1088 within 1% (docs/flops.md): whole detector without RoIAlign, 2000 RoIs through the box
/// head (torchvision's post-NMS proposals per training image), COCO's 80 classes + background, and
/// 128 RoIs through the Mask R-CNN mask head (the positives of a training image: 512 sampled RoIs ×
/// 25% positive), which reproduces the paper's Mask R-CNN ResNet50 figure (259.7 G vs 261.2 G).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Convention {
    /// `num_classes` of the torchvision detector (R-CNN predictors include the background).
    pub num_classes: usize,
    /// RoIs through the R-CNN box head.
    pub rois: usize,
    /// RoIs through the Mask R-CNN mask head: 128, the positive RoIs it trains on per image (512 ×
    /// 25%); 100 is torchvision's test-time detections per image.
    pub mask_rois: usize,
    /// Detector inputs are padded to a multiple of this (torchvision's `size_divisible`).
    pub size_divisible: usize,
    /// FPN channels.
    pub fpn_channels: usize,
    /// Width of the R-CNN box head's two fully connected layers (torchvision's 1024).
    pub representation_size: usize,
    /// Count the classifier (`fc`, 1000 classes) when there is no detector (torchvision's `_ops` does).
    pub classifier: bool,
}

impl Default for Convention {
    fn default() -> Self {
        Convention {
            num_classes: 81,
            rois: 2000,
            mask_rois: 128,
            size_divisible: 32,
            fpn_channels: 256,
            representation_size: 1024,
            classifier: true,
        }
    }
}

impl Convention {
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("num_classes", self.num_classes),
            ("size_divisible", self.size_divisible),
            ("fpn_channels", self.fpn_channels),
            ("representation_size", self.representation_size),
        ] {
            ensure!(v >= 1, CrnasError::value(name, "an integer >= 1", v));
        }
        Ok(())
    }
}

/// One counted layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerCost {
    /// Module path as in the torchvision-compatible model (e.g. `layer2.0.conv2`).
    pub name: String,
    pub part: Part,
    /// `conv`, `deconv` or `linear`.
    pub kind: &'static str,
    pub macs: u64,
    pub params: u64,
    /// Output `[C, H, W]` (`[features, 1, 1]` for linear layers), per sample or per RoI.
    pub output: [usize; 3],
    /// How many times the layer runs per image (RoI heads: number of RoIs; shared heads: levels).
    pub repeats: usize,
}

/// Receives the layers of a walk. `name` is only called by sinks that keep names.
trait Sink {
    fn layer(&mut self, part: Part, name: &dyn Fn() -> String, kind: &'static str, macs: u64, params: u64, output: [usize; 3], repeats: usize);
}

/// Totals only (the fast path of `count_many`).
#[derive(Default)]
struct Totals {
    macs: u64,
    params: u64,
}

impl Sink for Totals {
    fn layer(&mut self, _: Part, _: &dyn Fn() -> String, _: &'static str, macs: u64, params: u64, _: [usize; 3], _: usize) {
        self.macs += macs;
        self.params += params;
    }
}

impl Sink for Vec<LayerCost> {
    fn layer(&mut self, part: Part, name: &dyn Fn() -> String, kind: &'static str, macs: u64, params: u64, output: [usize; 3], repeats: usize) {
        self.push(LayerCost { name: name(), part, kind, macs, params, output, repeats });
    }
}

/// Output length of a convolution or pooling window (PyTorch's formula).
pub fn conv_out(len: usize, kernel: usize, stride: usize, padding: usize, dilation: usize) -> usize {
    let span = dilation * (kernel - 1) + 1;
    if len + 2 * padding < span {
        0
    } else {
        (len + 2 * padding - span) / stride + 1
    }
}

/// A convolution followed (optionally) by a norm layer with `norm` affine parameters per channel.
#[derive(Clone, Copy)]
struct Conv {
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
    bias: bool,
    norm: bool,
}

impl Conv {
    fn new(cin: usize, cout: usize, k: usize) -> Self {
        Conv { cin, cout, k, stride: 1, padding: k / 2, dilation: 1, groups: 1, bias: false, norm: true }
    }
    fn stride(self, stride: usize) -> Self {
        Conv { stride, ..self }
    }
    fn dilated(self, dilation: usize) -> Self {
        Conv { dilation, padding: dilation * (self.k / 2), ..self }
    }
    fn groups(self, groups: usize) -> Self {
        Conv { groups, ..self }
    }
    /// A detection-head conv: bias, no norm.
    fn head(self) -> Self {
        Conv { bias: true, norm: false, ..self }
    }
    fn params(&self) -> u64 {
        let w = self.cout * self.cin / self.groups * self.k * self.k;
        (w + if self.bias { self.cout } else { 0 } + if self.norm { 2 * self.cout } else { 0 }) as u64
    }
    /// Emit the layer for an input of `hw`; returns the output size.
    fn emit(&self, sink: &mut dyn Sink, part: Part, name: &dyn Fn() -> String, hw: (usize, usize), repeats: usize) -> (usize, usize) {
        let out = (
            conv_out(hw.0, self.k, self.stride, self.padding, self.dilation),
            conv_out(hw.1, self.k, self.stride, self.padding, self.dilation),
        );
        let macs = (self.cout * out.0 * out.1 * (self.cin / self.groups) * self.k * self.k) as u64;
        sink.layer(part, name, "conv", macs * repeats as u64, self.params(), [self.cout, out.0, out.1], repeats);
        out
    }
}

fn linear(sink: &mut dyn Sink, part: Part, name: &dyn Fn() -> String, cin: usize, cout: usize, repeats: usize) {
    sink.layer(part, name, "linear", (cin * cout * repeats) as u64, (cin * cout + cout) as u64, [cout, 1, 1], repeats);
}

/// Walk the backbone; returns the output size of each stage (C2..C5).
fn walk_backbone(layout: &Layout, hw: (usize, usize), classifier: bool, sink: &mut dyn Sink) -> [(usize, usize); 4] {
    let mut sizes = [(0, 0); 4];
    let mut hw = hw;
    match &layout.stem {
        Stem::Resnet { channels } => {
            hw = Conv::new(3, *channels, 7).stride(2).emit(sink, Part::Stem, &|| "conv1".into(), hw, 1);
            hw = (conv_out(hw.0, 3, 2, 1, 1), conv_out(hw.1, 3, 2, 1, 1)); // maxpool
        }
        Stem::MobilenetV2 { channels, first } => {
            hw = Conv::new(3, *channels, 3).stride(2).emit(sink, Part::Stem, &|| "features.0.0".into(), hw, 1);
            hw = inverted_residual(first, 1, Part::Stem, hw, sink);
        }
    }
    let mut feature = 2; // MobileNetV2 `features` index of the next block
    for (i, blocks) in layout.stages.iter().enumerate() {
        let part = Part::STAGES[i];
        for (j, block) in blocks.iter().enumerate() {
            hw = match block {
                Block::Basic { inplanes, planes, stride, dilation, downsample } => {
                    let name = |c: &'static str| move || format!("layer{}.{j}.{c}", i + 1);
                    let out = Conv::new(*inplanes, *planes, 3).stride(*stride).emit(sink, part, &name("conv1"), hw, 1);
                    let out = Conv::new(*planes, *planes, 3).dilated(*dilation).emit(sink, part, &name("conv2"), out, 1);
                    if *downsample {
                        Conv::new(*inplanes, *planes, 1).stride(*stride).emit(sink, part, &name("downsample.0"), hw, 1);
                    }
                    out
                }
                Block::Bottleneck { inplanes, width, planes, stride, groups, dilation, downsample } => {
                    let name = |c: &'static str| move || format!("layer{}.{j}.{c}", i + 1);
                    let out = Conv::new(*inplanes, *width, 1).emit(sink, part, &name("conv1"), hw, 1);
                    let out =
                        Conv::new(*width, *width, 3).stride(*stride).groups(*groups).dilated(*dilation).emit(sink, part, &name("conv2"), out, 1);
                    let out = Conv::new(*width, planes * 4, 1).emit(sink, part, &name("conv3"), out, 1);
                    if *downsample {
                        Conv::new(*inplanes, planes * 4, 1).stride(*stride).emit(sink, part, &name("downsample.0"), hw, 1);
                    }
                    out
                }
                Block::InvertedResidual { .. } => {
                    let out = inverted_residual(block, feature, part, hw, sink);
                    feature += 1;
                    out
                }
            };
        }
        sizes[i] = hw;
    }
    if let Some((cin, cout)) = layout.last_conv {
        let name = move || format!("features.{feature}.0");
        hw = Conv::new(cin, cout, 1).emit(sink, Part::C5, &name, hw, 1);
        sizes[3] = hw;
    }
    if classifier {
        let name: &dyn Fn() -> String = if layout.last_conv.is_some() { &|| "classifier.1".into() } else { &|| "fc".into() };
        linear(sink, Part::Classifier, name, layout.num_features, 1000, 1);
    }
    sizes
}

fn inverted_residual(block: &Block, index: usize, part: Part, hw: (usize, usize), sink: &mut dyn Sink) -> (usize, usize) {
    let Block::InvertedResidual { inp, hidden, oup, stride, dilation } = *block else { unreachable!("not an inverted residual") };
    let name = |c: &'static str| move || format!("features.{index}.conv.{c}");
    let mut out = hw;
    let mut next = 0;
    if hidden != inp {
        out = Conv::new(inp, hidden, 1).emit(sink, part, &name("0.0"), out, 1);
        next = 1;
    }
    let (dw, proj) = if next == 0 { ("0.0", "1") } else { ("1.0", "2") };
    out = Conv::new(hidden, hidden, 3).stride(stride).groups(hidden).dilated(dilation).emit(sink, part, &name(dw), out, 1);
    Conv::new(hidden, oup, 1).emit(sink, part, &name(proj), out, 1)
}

/// FPN over `levels` (channels, size); returns the sizes of its outputs (extra levels included).
fn walk_fpn(levels: &[(usize, (usize, usize))], conv: &Convention, p6p7: bool, sink: &mut dyn Sink) -> Vec<(usize, usize)> {
    let c = conv.fpn_channels;
    let mut outs = Vec::new();
    for (i, &(cin, hw)) in levels.iter().enumerate() {
        Conv::new(cin, c, 1).head().emit(sink, Part::Fpn, &|| format!("backbone.fpn.inner_blocks.{i}.0"), hw, 1);
        outs.push(Conv::new(c, c, 3).head().emit(sink, Part::Fpn, &|| format!("backbone.fpn.layer_blocks.{i}.0"), hw, 1));
    }
    let last = *outs.last().expect("at least one FPN level");
    if p6p7 {
        // torchvision LastLevelP6P7(256, 256): P6 = conv(P5), P7 = conv(relu(P6)).
        let p6 = Conv::new(c, c, 3).stride(2).head().emit(sink, Part::Fpn, &|| "backbone.fpn.extra_blocks.p6".into(), last, 1);
        let p7 = Conv::new(c, c, 3).stride(2).head().emit(sink, Part::Fpn, &|| "backbone.fpn.extra_blocks.p7".into(), p6, 1);
        outs.extend([p6, p7]);
    } else {
        // LastLevelMaxPool: max_pool2d(P5, kernel 1, stride 2).
        outs.push((conv_out(last.0, 1, 2, 0, 1), conv_out(last.1, 1, 2, 0, 1)));
    }
    outs
}

/// A head whose weights are shared across pyramid levels: MACs summed over `levels`, params once.
fn shared_conv(conv: Conv, part: Part, name: &dyn Fn() -> String, levels: &[(usize, (usize, usize))], sink: &mut dyn Sink) {
    let mut macs = 0;
    let mut out = [conv.cout, 0, 0];
    for &(_, hw) in levels {
        let mut t = Totals::default();
        let o = conv.emit(&mut t, part, name, hw, 1);
        macs += t.macs;
        if out[1] == 0 {
            out = [conv.cout, o.0, o.1];
        }
    }
    sink.layer(part, name, "conv", macs, conv.params(), out, levels.len());
}

fn walk_detector(layout: &Layout, hw: (usize, usize), det: Detector, conv: &Convention, sink: &mut dyn Sink) {
    let d = conv.size_divisible;
    let padded = (hw.0.div_ceil(d) * d, hw.1.div_ceil(d) * d);
    let sizes = walk_backbone(layout, padded, false, sink);
    let c = conv.fpn_channels;
    let stage = |i: usize| (layout.stage_channels[i], sizes[i]);
    match det {
        Detector::FasterRcnnFpn | Detector::MaskRcnnFpn => {
            let outs = walk_fpn(&[stage(0), stage(1), stage(2), stage(3)], conv, false, sink);
            let levels: Vec<_> = outs.iter().map(|&s| (c, s)).collect();
            let anchors = 3;
            shared_conv(Conv::new(c, c, 3).head(), Part::Rpn, &|| "rpn.head.conv.0.0".into(), &levels, sink);
            shared_conv(Conv::new(c, anchors, 1).head(), Part::Rpn, &|| "rpn.head.cls_logits".into(), &levels, sink);
            shared_conv(Conv::new(c, 4 * anchors, 1).head(), Part::Rpn, &|| "rpn.head.bbox_pred".into(), &levels, sink);
            let (r, rep) = (conv.rois, conv.representation_size);
            linear(sink, Part::RoiBox, &|| "roi_heads.box_head.fc6".into(), c * 7 * 7, rep, r);
            linear(sink, Part::RoiBox, &|| "roi_heads.box_head.fc7".into(), rep, rep, r);
            linear(sink, Part::RoiBox, &|| "roi_heads.box_predictor.cls_score".into(), rep, conv.num_classes, r);
            linear(sink, Part::RoiBox, &|| "roi_heads.box_predictor.bbox_pred".into(), rep, 4 * conv.num_classes, r);
            if det == Detector::MaskRcnnFpn {
                let m = conv.mask_rois;
                for i in 0..4 {
                    Conv::new(c, c, 3).head().emit(sink, Part::RoiMask, &|| format!("roi_heads.mask_head.{i}.0"), (14, 14), m);
                }
                // ConvTranspose2d(256, 256, 2, stride 2): cin·cout·k² MACs per input position.
                let deconv = (c * c * 4 * 14 * 14 * m) as u64;
                sink.layer(Part::RoiMask, &|| "roi_heads.mask_predictor.conv5_mask".into(), "deconv", deconv, (c * c * 4 + c) as u64, [c, 28, 28], m);
                Conv::new(c, conv.num_classes, 1).head().emit(sink, Part::RoiMask, &|| "roi_heads.mask_predictor.mask_fcn_logits".into(), (28, 28), m);
            }
        }
        Detector::RetinanetFpn | Detector::FcosFpn => {
            let outs = walk_fpn(&[stage(1), stage(2), stage(3)], conv, true, sink);
            let levels: Vec<_> = outs.iter().map(|&s| (c, s)).collect();
            let (cls, reg) = ("head.classification_head", "head.regression_head");
            let tower = |sink: &mut dyn Sink, prefix: &'static str| {
                for i in 0..4 {
                    // RetinaNet: conv + ReLU; FCOS: conv + GroupNorm (affine) + ReLU.
                    let mut layer = Conv::new(c, c, 3).head();
                    layer.norm = det == Detector::FcosFpn;
                    // Module paths: RetinaNet `conv.{i}.0` (Conv2dNormActivation); FCOS `conv.{3i}` (flat Sequential).
                    let name = || if det == Detector::FcosFpn { format!("{prefix}.conv.{}", 3 * i) } else { format!("{prefix}.conv.{i}.0") };
                    shared_conv(layer, Part::DenseHead, &name, &levels, sink);
                }
            };
            tower(sink, cls);
            tower(sink, reg);
            if det == Detector::RetinanetFpn {
                let a = 9;
                shared_conv(Conv::new(c, a * conv.num_classes, 3).head(), Part::DenseHead, &|| format!("{cls}.cls_logits"), &levels, sink);
                shared_conv(Conv::new(c, 4 * a, 3).head(), Part::DenseHead, &|| format!("{reg}.bbox_reg"), &levels, sink);
            } else {
                shared_conv(Conv::new(c, conv.num_classes, 3).head(), Part::DenseHead, &|| format!("{cls}.cls_logits"), &levels, sink);
                shared_conv(Conv::new(c, 4, 3).head(), Part::DenseHead, &|| format!("{reg}.bbox_reg"), &levels, sink);
                shared_conv(Conv::new(c, 1, 3).head(), Part::DenseHead, &|| format!("{reg}.bbox_ctrness"), &levels, sink);
            }
        }
    }
}

fn check_input(hw: (usize, usize)) -> Result<()> {
    ensure!(
        hw.0 >= 1 && hw.1 >= 1 && hw.0 <= 100_000 && hw.1 <= 100_000,
        CrnasError::value("input_size", "(H, W) with 1 <= H, W <= 100000", format!("({}, {})", hw.0, hw.1))
    );
    Ok(())
}

fn walk(arch: &Architecture, hw: (usize, usize), det: Option<Detector>, conv: &Convention, sink: &mut dyn Sink) -> Result<()> {
    check_input(hw)?;
    conv.validate()?;
    let layout = arch.layout();
    match det {
        None => {
            walk_backbone(&layout, hw, conv.classifier, sink);
        }
        Some(det) => walk_detector(&layout, hw, det, conv, sink),
    }
    Ok(())
}

/// A full breakdown: every layer, in execution order.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub input_size: (usize, usize),
    pub detector: Option<Detector>,
    pub convention: Convention,
    pub layers: Vec<LayerCost>,
}

impl Report {
    pub fn macs(&self) -> u64 {
        self.layers.iter().map(|l| l.macs).sum()
    }
    pub fn params(&self) -> u64 {
        self.layers.iter().map(|l| l.params).sum()
    }
    /// `(part, MACs, params)` for every part present, in network order.
    pub fn by_part(&self) -> Vec<(Part, u64, u64)> {
        let mut parts: Vec<(Part, u64, u64)> = Vec::new();
        for l in &self.layers {
            match parts.iter_mut().find(|p| p.0 == l.part) {
                Some(p) => {
                    p.1 += l.macs;
                    p.2 += l.params;
                }
                None => parts.push((l.part, l.macs, l.params)),
            }
        }
        parts.sort_by_key(|p| p.0);
        parts
    }

    /// A text table: one row per part (and per layer with `layers = true`), then the total.
    pub fn table(&self, layers: bool) -> String {
        let total = self.macs().max(1) as f64;
        let mut s = String::new();
        let det = self.detector.map(|d| d.name()).unwrap_or("backbone");
        s += &format!(
            "{det} at {}x{} (MACs; conv + linear layers)\n{:<44} {:>12} {:>7} {:>12}\n",
            self.input_size.0, self.input_size.1, "part / layer", "GMACs", "%", "params (M)"
        );
        for (part, macs, params) in self.by_part() {
            s += &format!("{:<44} {:>12.4} {:>6.1}% {:>12.4}\n", part.name(), macs as f64 / 1e9, 100.0 * macs as f64 / total, params as f64 / 1e6);
            if layers {
                for l in self.layers.iter().filter(|l| l.part == part) {
                    s += &format!(
                        "  {:<42} {:>12.4} {:>6.1}% {:>12.4}\n",
                        l.name,
                        l.macs as f64 / 1e9,
                        100.0 * l.macs as f64 / total,
                        l.params as f64 / 1e6
                    );
                }
            }
        }
        s += &format!("{:<44} {:>12.4} {:>6.1}% {:>12.4}\n", "total", self.macs() as f64 / 1e9, 100.0, self.params() as f64 / 1e6);
        s
    }
}

/// Count one architecture, layer by layer.
pub fn count(arch: &Architecture, input_size: (usize, usize), detector: Option<Detector>, convention: &Convention) -> Result<Report> {
    let mut layers = Vec::new();
    walk(arch, input_size, detector, convention, &mut layers)?;
    Ok(Report { input_size, detector, convention: convention.clone(), layers })
}

/// Total MACs of one architecture (no per-layer records).
pub fn total_macs(arch: &Architecture, input_size: (usize, usize), detector: Option<Detector>, convention: &Convention) -> Result<u64> {
    let mut t = Totals::default();
    walk(arch, input_size, detector, convention, &mut t)?;
    Ok(t.macs)
}

/// Total MACs of many architectures, in parallel.
pub fn count_many<A: std::borrow::Borrow<Architecture> + Sync>(archs: &[A], input_size: (usize, usize), detector: Option<Detector>, convention: &Convention) -> Result<Vec<u64>> {
    check_input(input_size)?;
    convention.validate()?;
    archs.par_iter().map(|a| total_macs(a.borrow(), input_size, detector, convention)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Family;

    fn macs(arch: &Architecture, hw: (usize, usize), det: Option<Detector>) -> u64 {
        total_macs(arch, hw, det, &Convention::default()).unwrap()
    }

    #[test]
    fn resnet50_at_224_matches_torchvision_ops() {
        let r = count(&Architecture::baseline(Family::Resnet50), (224, 224), None, &Convention::default()).unwrap();
        assert_eq!((r.macs() as f64 / 1e9 * 1000.0).round() / 1000.0, 4.089);
        assert_eq!(r.params(), 25_557_032); // torchvision resnet50 num_params
        let m = count(&Architecture::baseline(Family::MobilenetV2), (224, 224), None, &Convention::default()).unwrap();
        assert_eq!(m.params(), 3_504_872); // torchvision mobilenet_v2 num_params
    }

    #[test]
    fn stage_reallocation_keeps_resnet_conv_macs() {
        let base = Architecture::baseline(Family::Resnet50);
        let scr = Architecture::paper("scr_resnet50").unwrap();
        let cr = Architecture::paper("cr_resnet50").unwrap();
        for hw in [(224, 224), (800, 1088)] {
            assert_eq!(macs(&base, hw, None), macs(&scr, hw, None));
            assert_eq!(macs(&scr, hw, None), macs(&cr, hw, None)); // dilation is free
        }
    }

    #[test]
    fn count_many_equals_count() {
        let archs: Vec<_> = [[3, 4, 6, 3], [1, 3, 5, 7], [10, 1, 2, 3]]
            .iter()
            .map(|b| Architecture::new(Family::Resnet50, b.to_vec(), None, 0.5).unwrap())
            .collect();
        let many = count_many(&archs, (333, 517), Some(Detector::RetinanetFpn), &Convention::default()).unwrap();
        for (a, m) in archs.iter().zip(many) {
            assert_eq!(m, count(a, (333, 517), Some(Detector::RetinanetFpn), &Convention::default()).unwrap().macs());
        }
    }

    #[test]
    fn paper_faster_rcnn_figures_within_one_percent() {
        let det = Some(Detector::FasterRcnnFpn);
        for (fam, paper) in [(Family::Resnet50, 192.5), (Family::MobilenetV2, 121.1)] {
            let g = macs(&Architecture::baseline(fam), (800, 1088), det) as f64 / 1e9;
            assert!((g / paper - 1.0).abs() < 0.01, "{fam}: {g:.2} G vs paper {paper} G");
        }
    }

    #[test]
    fn paper_mask_rcnn_figure_within_one_percent_with_128_mask_rois() {
        let r50 = Architecture::baseline(Family::Resnet50);
        let g = macs(&r50, (800, 1088), Some(Detector::MaskRcnnFpn)) as f64 / 1e9;
        assert!((g / 261.2 - 1.0).abs() < 0.01, "{g:.2} G vs paper 261.2 G");
        // 100 mask RoIs (test-time detections) is 6% short of the paper
        let conv = Convention { mask_rois: 100, ..Convention::default() };
        let g100 = count(&r50, (800, 1088), Some(Detector::MaskRcnnFpn), &conv).unwrap().macs() as f64 / 1e9;
        assert!(g100 / 261.2 - 1.0 < -0.05, "{g100:.2} G");
    }

    #[test]
    fn odd_sizes_follow_pytorch() {
        assert_eq!(conv_out(7, 3, 2, 1, 1), 4);
        assert_eq!(conv_out(1, 7, 2, 3, 1), 1);
        assert_eq!(conv_out(5, 3, 1, 3, 3), 5);
        assert_eq!(conv_out(2, 7, 1, 0, 1), 0);
    }
}
