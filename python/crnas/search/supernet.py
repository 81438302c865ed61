"""Weight-sharing supernets for the hierarchical search (docs/design.md#supernets).

- Stage level: shared-prefix elastic depth. Each stage holds the most blocks any allocation of the
  space uses; an allocation runs the first blocks of every stage (for MobileNetV2: the first blocks
  of each of a stage's channel groups). The blocks and their names are those of the full-depth
  :func:`crnas.models.build` model, so a sub-network's weights *are* a final model's weights.
- Operation level: every searched 3×3 is a :class:`SearchableConv2d`, one kernel shared by the
  dilations (1, 2, 3). Its ``path`` is a dilation index for the whole batch (the paper's single-path
  sampling, run as a plain convolution), dilation indices ``LongTensor[N]``, one per image (the batch
  grouped by dilation, one plain convolution per group:
  :func:`crnas.ops.per_sample_dilation_conv2d`), or a float ``mix`` ``[D]``/``[N, D]`` for the fused
  op (softmax rows: the differentiable relaxation).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

from crnas.arch import DILATIONS, Architecture, StageSpace
from crnas.detection import assemble_detector, build_detector, fpn_extra_blocks, fpn_returned_layers
from crnas.models import BasicBlock, Bottleneck, CRMobileNetV2, InvertedResidual, build
from crnas.models.weights import InheritReport, inherit, torchvision_state_dict
from crnas.nn import MultiDilationConv2d

__all__ = [
    "SearchableConv2d",
    "ElasticSequential",
    "SuperNet",
    "SuperNetBackbone",
    "build_supernet_detector",
    "supernet_of",
    "extract_detector",
    "Path",
]

#: A block's path: a dilation index for the whole batch, one per image (an integer ``Tensor[N]``), or a
#: float mix ``Tensor[D]`` / ``Tensor[N, D]``.
Path = int | Tensor


class SearchableConv2d(MultiDilationConv2d):
    """A searched 3×3 convolution: one kernel, the dilation (or mix of dilations) set by ``path``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path: Path = 0

    def forward(self, input: Tensor) -> Tensor:  # type: ignore[override]
        path = self.path
        if isinstance(path, int):
            d = self.dilations[path]
            return F.conv2d(input, self.weight, self.bias, self.stride, d, d, self.groups)
        return super().forward(input, path if not path.is_floating_point() else path.to(input.dtype))


class ElasticSequential(nn.Sequential):
    """``nn.Sequential`` that runs only the blocks listed in ``active`` (all by default)."""

    def __init__(self, *modules: nn.Module) -> None:
        super().__init__(*modules)
        self.active: tuple[int, ...] = tuple(range(len(self)))

    def forward(self, x: Tensor) -> Tensor:
        for i in self.active:
            x = self[i](x)
        return x


def _searchable(conv: nn.Conv2d, dilations: Sequence[int]) -> SearchableConv2d:
    new = SearchableConv2d(
        conv.in_channels, conv.out_channels, dilations, conv.stride[0], conv.groups, bias=conv.bias is not None,
        device=conv.weight.device, dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        new.weight.copy_(conv.weight)
    return new


def _groups(stage: Sequence[dict[str, Any]]) -> list[int]:
    """Block counts of a stage's channel groups (runs of equal output channels) in a layout."""
    counts: list[int] = []
    previous = None
    for block in stage:
        out = block.get("oup", block.get("planes"))
        if out != previous:
            counts.append(0)
        counts[-1] += 1
        previous = out
    return counts


class SuperNet(nn.Module):
    """The backbone supernet of a :class:`~crnas.StageSpace`: returns C2..C5 of the current sub-network.

    Args:
        space: the stage space; the supernet holds, per stage (and channel group), the most blocks any
            of its allocations uses, at the space's width.
        norm_layer: normalisation (default ``nn.BatchNorm2d``).
        dilations: candidate dilations of every searched 3×3.
        returned_layers: stages returned by ``forward`` (1 = C2 … 4 = C5), keyed ``'0'``, ``'1'``, …
        normalize_outputs: divide every returned stage's output, on its way to the FPN (not to the next
            stage), by its running root mean square at the stage's current depth, so that the shared FPN
            sees every depth at one scale: a stage's output grows with its depth, every residual block
            adding to it (docs/design.md#normalized-outputs). The running values are kept per stage and
            depth by training steps (training mode with gradients enabled, so BatchNorm recalibration
            before scoring leaves them); :func:`extract_detector` folds them into the FPN.
    """

    output_rms: Tensor
    output_count: Tensor

    def __init__(
        self,
        space: StageSpace,
        *,
        norm_layer: Callable[[int], nn.Module] | None = None,
        dilations: Sequence[int] = DILATIONS,
        returned_layers: Sequence[int] = (1, 2, 3, 4),
        normalize_outputs: bool = False,
    ) -> None:
        super().__init__()
        self.space = space
        self.dilations = tuple(dilations)
        self.returned_layers = tuple(returned_layers)
        max_arch = space.architecture([max(c) for c in space.choices])
        self.full_architecture = max_arch  # every block of every stage: the supernet's own layout
        self.norm_layer = norm_layer or nn.BatchNorm2d  # the extracted sub-networks' too
        template = build(max_arch, norm_layer=norm_layer)
        self.stage_channels = list(template.stage_channels)
        self.mobilenet = isinstance(template, CRMobileNetV2)
        self._max_groups = [_groups(stage) for stage in max_arch.layout()["stages"]]
        self._stage_sizes = [sum(g) for g in self._max_groups]  # full-depth blocks per stage
        self._searchable: list[list[SearchableConv2d]] = []  # per stage, per block of the full depth
        if isinstance(template, CRMobileNetV2):
            self.features = ElasticSequential(*template.features)
            start = 2
            for count in self._stage_sizes:
                convs = []
                for idx in range(start, start + count):
                    block = self.features[idx]
                    assert isinstance(block, InvertedResidual), "features[2:-1] of a CRMobileNetV2 are its blocks"
                    dw = block.conv[-3]  # Conv2dNormActivation holding the depthwise conv
                    assert isinstance(dw, nn.Sequential) and isinstance(dw[0], nn.Conv2d), "Conv2dNormActivation starts with its conv"
                    conv = _searchable(dw[0], self.dilations)
                    dw[0] = conv
                    convs.append(conv)
                self._searchable.append(convs)
                start += count
        else:
            self.conv1, self.bn1, self.relu, self.maxpool = template.conv1, template.bn1, template.relu, template.maxpool
            for i, layer in enumerate((template.layer1, template.layer2, template.layer3, template.layer4), start=1):
                stage = ElasticSequential(*layer)
                convs = []
                for block in stage:
                    assert isinstance(block, (Bottleneck, BasicBlock)), "a CRResNet's stages hold its blocks"
                    conv = _searchable(block.conv2, self.dilations)
                    block.add_module("conv2", conv)  # replaces the Conv2d (the attribute is typed nn.Conv2d)
                    convs.append(conv)
                self._searchable.append(convs)
                setattr(self, f"layer{i}", stage)
        self.normalize_outputs = normalize_outputs
        #: Per returned stage and depth (columns 0 .. the stage's full depth; 0 unused): the running root
        #: mean square of the stage's output, and the number of training batches it averages so far.
        shape = (len(self.returned_layers), max(self._stage_sizes) + 1)
        self.register_buffer("output_rms", torch.ones(shape) if normalize_outputs else torch.ones(0))
        self.register_buffer("output_count", torch.zeros(shape, dtype=torch.long) if normalize_outputs else torch.zeros(0, dtype=torch.long))
        self._depths: list[int] = []
        self.allocation: list[int] = []
        self.active_convs: list[SearchableConv2d] = []
        self._stage_ends: list[int] = []
        self.set_allocation(space.allocations()[0] if len(space) else max_arch.blocks)

    def active_indices(self, blocks: Sequence[int]) -> list[list[int]]:
        """Per stage, the indices (within the stage's full-depth blocks) an allocation runs."""
        layout = self.space.architecture(list(blocks)).layout()
        indices = []
        for stage, max_groups in zip(layout["stages"], self._max_groups):
            groups = _groups(stage)
            if len(groups) != len(max_groups) or any(g > m for g, m in zip(groups, max_groups)):
                raise ValueError(f"blocks: expected an allocation within the supernet's depths, got {list(blocks)}")
            offset = 0
            active: list[int] = []
            for g, m in zip(groups, max_groups):
                active += range(offset, offset + g)
                offset += m
            indices.append(active)
        return indices

    def _feature_indices(self, indices: list[list[int]]) -> tuple[list[int], list[int]]:
        """MobileNetV2: the ``features`` entries the sub-network of ``indices`` (from
        :meth:`active_indices`) runs, in order (stem, its blocks, the last 1×1 conv), and the entry
        that ends each stage (C5 ends with the last conv)."""
        active, ends, start = [0, 1], [], 2
        for stage_active, count in zip(indices, self._stage_sizes):
            active += [start + i for i in stage_active]
            ends.append(active[-1])
            start += count
        active.append(len(self.features) - 1)
        ends[-1] = len(self.features) - 1
        return active, ends

    def set_allocation(self, blocks: Sequence[int]) -> None:
        """Run the sub-network of ``blocks`` from now on; every searched conv's path is reset to dilation 1."""
        indices = self.active_indices(blocks)
        if self.mobilenet:
            active, self._stage_ends = self._feature_indices(indices)
            self.features.active = tuple(active)
        else:
            for i, stage_active in enumerate(indices):
                getattr(self, f"layer{i + 1}").active = tuple(stage_active)
        self.allocation = list(blocks)
        self._depths = [len(stage) for stage in indices]
        self.active_convs = [self._searchable[s][i] for s, stage in enumerate(indices) for i in stage]
        self.set_paths([self.dilations.index(1) if 1 in self.dilations else 0] * len(self.active_convs))

    def set_paths(self, paths: Sequence[Path]) -> None:
        """One path per active block, in network order (see :data:`Path`)."""
        if len(paths) != len(self.active_convs):
            raise ValueError(f"paths: expected {len(self.active_convs)} (one per active block), got {len(paths)}")
        for conv, path in zip(self.active_convs, paths):
            conv.path = path

    def set_dilations(self, dilations: Sequence[int]) -> None:
        """Give every active block one dilation value (for the whole batch)."""
        self.set_paths([self.dilations.index(d) for d in dilations])

    def architecture(self, dilations: Sequence[int] | None = None) -> Architecture:
        """The :class:`~crnas.Architecture` of the current allocation (with ``dilations``)."""
        return self.space.architecture(self.allocation, list(dilations) if dilations is not None else None)

    def output_scales(self, blocks: Sequence[int] | None = None) -> list[Tensor | None]:
        """Per returned stage, the running root mean square its output is divided by at the depths of
        ``blocks`` (default: the current allocation) with ``normalize_outputs``, else ``None`` (the
        output passes unchanged)."""
        if not self.normalize_outputs:
            return [None] * len(self.returned_layers)
        depths = self._depths if blocks is None else [len(stage) for stage in self.active_indices(blocks)]
        return [self.output_rms[j, depths[k - 1]] for j, k in enumerate(self.returned_layers)]

    def _normalize(self, j: int, y: Tensor) -> Tensor:
        """Returned stage ``j``'s output divided by its running root mean square at its depth, first
        updated with ``y`` by a training step (a cumulative average over the first ten batches, then
        momentum 0.1)."""
        d = self._depths[self.returned_layers[j] - 1]
        if self.training and torch.is_grad_enabled():
            with torch.no_grad():
                self.output_count[j, d] += 1
                weight = self.output_count[j, d].float().reciprocal().clamp(min=0.1)
                self.output_rms[j, d] += weight * (y.detach().float().pow(2).mean().sqrt() - self.output_rms[j, d])
        return y / self.output_rms[j, d].clamp(min=1e-6).to(y.dtype)

    def subnet_state_dict(self, arch: Architecture) -> dict[str, Tensor]:
        """Weights of the sub-network ``arch`` under the module names of ``crnas.models.build(arch)``
        (without the outputs' running scales, which :func:`extract_detector` folds into the FPN)."""
        indices = self.active_indices(arch.blocks)
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("output_")}
        if not self.mobilenet:
            keep = {f"layer{s + 1}.{i}." for s, stage in enumerate(indices) for i in stage}
            return {k: v for k, v in state.items() if not k.startswith("layer") or any(k.startswith(p) for p in keep)}
        active, _ = self._feature_indices(indices)
        mapping = {idx: pos for pos, idx in enumerate(active)}  # supernet entry -> the final model's
        out = {}
        for k, v in state.items():
            _, idx, rest = k.split(".", 2)
            if int(idx) in mapping:
                out[f"features.{mapping[int(idx)]}.{rest}"] = v
        return out

    def inherit(self, weights: Any, *, source_arch: Any = None) -> InheritReport:
        """Initialise every block from a checkpoint of the space's family (``weights`` as in
        :func:`crnas.models.weights.torchvision_state_dict`: ``"torchvision"``, a state-dict file, a
        state dict), by :func:`crnas.models.weights.inherit`'s block mapping applied to the full-depth
        network (a stage deeper than the source's repeats its non-first blocks cyclically), as DetNAS
        starts its supernet from ImageNet weights. Returns the mapping's report."""
        full = build(self.full_architecture)
        report = inherit(full, torchvision_state_dict(self.full_architecture.family, weights), source_arch=source_arch)
        mine = self.subnet_state_dict(self.full_architecture)  # this supernet's tensors, under full's names
        taken = set(report.copied) | set(report.adapted)
        with torch.no_grad():
            for key, value in full.state_dict().items():
                if key in taken and key in mine:
                    mine[key].copy_(value)
        return report

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        if self.mobilenet:
            outs = []
            for i in self.features.active:
                x = self.features[i](x)
                if i in self._stage_ends:
                    outs.append(x)
        else:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            outs = []
            for i in range(1, 5):
                x = getattr(self, f"layer{i}")(x)
                outs.append(x)
        returned = [outs[k - 1] for k in self.returned_layers]
        if self.normalize_outputs:
            returned = [self._normalize(j, y) for j, y in enumerate(returned)]
        return OrderedDict((str(j), y) for j, y in enumerate(returned))


class SuperNetBackbone(nn.Module):
    """:class:`SuperNet` + FPN with ``out_channels``, like torchvision's ``BackboneWithFPN``."""

    def __init__(self, body: SuperNet, extra_blocks: Any = None, out_channels: int = 256) -> None:
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(
            [body.stage_channels[k - 1] for k in body.returned_layers], out_channels, extra_blocks=extra_blocks or LastLevelMaxPool()
        )
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return self.fpn(self.body(x))


def build_supernet_detector(
    detector: str, space: StageSpace, *, num_classes: int, fpn_channels: int = 256, representation_size: int | None = None,
    norm_layer: Callable[[int], nn.Module] | None = None, normalize_outputs: bool = False, **kwargs: Any,
) -> nn.Module:
    """A torchvision detector (as :func:`crnas.detection.build_detector`, same head options) whose
    backbone is the supernet of ``space`` (trainable, ``norm_layer``: default ``nn.BatchNorm2d``;
    ``normalize_outputs`` as in :class:`SuperNet`); see :func:`supernet_of`."""
    body = SuperNet(space, norm_layer=norm_layer, returned_layers=fpn_returned_layers(detector), normalize_outputs=normalize_outputs)
    backbone = SuperNetBackbone(body, extra_blocks=fpn_extra_blocks(detector, fpn_channels), out_channels=fpn_channels)
    return assemble_detector(detector, backbone, num_classes=num_classes, representation_size=representation_size, **kwargs)


def extract_detector(model: nn.Module, arch: Architecture, detector: str, *, num_classes: int, **kwargs: Any) -> nn.Module:
    """The final detector of ``arch`` (:func:`crnas.detection.build_detector`, standard layers only)
    carrying the supernet detector's weights: the sub-network's backbone, the FPN and the heads (the
    FPN's lateral 1×1 convs divided by the running scales of the supernet's normalised outputs at
    ``arch``'s depths)."""
    backbone = model.backbone
    assert isinstance(backbone, SuperNetBackbone), "a detector from build_supernet_detector"
    final = build_detector(
        detector, arch, num_classes=num_classes, norm_layer=supernet_of(model).norm_layer, fpn_channels=backbone.out_channels, **kwargs
    )
    body = supernet_of(model).subnet_state_dict(arch)
    if supernet_of(model).mobilenet:  # the FPN body of a CRMobileNetV2 is its `features`
        body = {k.split(".", 1)[1]: v for k, v in body.items()}
    state = {f"backbone.body.{k}": v for k, v in body.items()}
    state.update({k: v for k, v in model.state_dict().items() if not k.startswith("backbone.body.")})
    for j, scale in enumerate(supernet_of(model).output_scales(arch.blocks)):
        if scale is not None:  # conv(x / s) = (conv's weight / s)(x)
            weight = f"backbone.fpn.inner_blocks.{j}.0.weight"
            state[weight] = state[weight] / scale.clamp(min=1e-6)
    final.load_state_dict(state)
    return final


def supernet_of(model: nn.Module) -> SuperNet:
    """The :class:`SuperNet` inside a detector from :func:`build_supernet_detector`."""
    body = getattr(getattr(model, "backbone", None), "body", None)
    if not isinstance(body, SuperNet):
        raise TypeError(f"model: expected a detector from build_supernet_detector, got {type(model).__name__}")
    return body
