"""CR backbones in torchvision detectors.

:func:`cr_backbone_with_fpn` mirrors ``torchvision.models.detection.backbone_utils.resnet_fpn_backbone``
(and, for MobileNetV2, ``mobilenet_backbone``): same arguments, same freezing rule, a
``BackboneWithFPN`` whose ``out_channels`` and ``OrderedDict`` outputs (``'0'..``, ``'pool'``) every
torchvision detector accepts. The FPN's input channels come from the architecture's layout, so any
allocation and width works.

.. note:: For MobileNetV2, torchvision's ``mobilenet_backbone`` feeds the FPN with the output of the
   *first* (strided) block of each stage and, by default, only the last two stages. crnas returns the
   *end* of each stage C2..C5 (4 levels by default), the detector the paper's MobileNetV2 figures
   describe (docs/flops.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, MaskRCNN, RetinaNet
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock, LastLevelMaxPool, LastLevelP6P7

from crnas.arch import DETECTORS, ArchLike, get_architecture
from crnas.models import CRMobileNetV2, CRResNet, build
from crnas.models.weights import inherit, torchvision_state_dict
from crnas.nn import MultiScaleRoIAlign

__all__ = [
    "cr_backbone_with_fpn",
    "fpn_extractor",
    "build_detector",
    "backbone_training",
    "NORMS",
    "group_norm",
    "norm_by_name",
    "assemble_detector",
    "fpn_returned_layers",
    "fpn_extra_blocks",
    "detection_limit",
    "detections_per_image",
    "DETECTORS",
    "fasterrcnn_cr_resnet50_fpn",
    "maskrcnn_cr_resnet50_fpn",
    "retinanet_cr_resnet50_fpn",
    "fcos_cr_resnet50_fpn",
]


def fpn_extractor(
    backbone: CRResNet | CRMobileNetV2,
    trainable_layers: int,
    returned_layers: Sequence[int] | None = None,
    extra_blocks: ExtraFPNBlock | None = None,
    norm_layer: Callable[..., nn.Module] | None = None,
    out_channels: int = 256,
) -> BackboneWithFPN:
    """Freeze all but the last ``trainable_layers`` of (stem, C2, C3, C4, C5) and put an FPN on the
    ``returned_layers`` (1 = C2 … 4 = C5) of a model from :func:`crnas.models.build`; torchvision's
    ``_resnet_fpn_extractor`` with channels read from the model."""
    if isinstance(trainable_layers, bool) or not isinstance(trainable_layers, int) or not 0 <= trainable_layers <= 5:
        raise ValueError(f"trainable_layers: expected an int in the range [0, 5], got {trainable_layers!r}")
    returned_layers = [1, 2, 3, 4] if returned_layers is None else list(returned_layers)
    if not returned_layers or min(returned_layers) < 1 or max(returned_layers) > 4:
        raise ValueError(f"returned_layers: expected values in the range [1, 4], got {returned_layers}")
    body: nn.Module
    if isinstance(backbone, CRMobileNetV2):
        # stage k (1..4) of `features` ends at stage_ends[k-1]; the stem is features[0..1]
        body = backbone.features
        ends = backbone.stage_ends
        starts = [2] + [e + 1 for e in ends[:-1]]
        groups = [range(0, 2)] + [range(s, e + 1) for s, e in zip(starts, ends)]  # stem, C2..C5
        trainable = {str(i) for g in groups[5 - trainable_layers :] for i in g} if trainable_layers else set()
        for name, p in body.named_parameters():
            if name.split(".")[0] not in trainable:
                p.requires_grad_(False)
        return_layers = {str(ends[k - 1]): str(v) for v, k in enumerate(returned_layers)}
    else:
        body = backbone
        layers_to_train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
        if trainable_layers == 5:
            layers_to_train.append("bn1")
        for name, p in body.named_parameters():
            if not any(name.startswith(layer) for layer in layers_to_train):
                p.requires_grad_(False)
        return_layers = {f"layer{k}": str(v) for v, k in enumerate(returned_layers)}
    in_channels_list = [backbone.stage_channels[k - 1] for k in returned_layers]
    fpn = BackboneWithFPN(
        body, return_layers, in_channels_list, out_channels, extra_blocks=extra_blocks or LastLevelMaxPool(), norm_layer=norm_layer
    )
    fpn.architecture = backbone.architecture
    return fpn


def cr_backbone_with_fpn(
    arch_or_name: ArchLike,
    *,
    weights_backbone: Any = None,
    trainable_layers: int = 3,
    returned_layers: Sequence[int] | None = None,
    extra_blocks: ExtraFPNBlock | None = None,
    norm_layer: Callable[[int], nn.Module] = FrozenBatchNorm2d,
    out_channels: int = 256,
    progress: bool = True,
) -> BackboneWithFPN:
    """A CR backbone with an FPN, like ``resnet_fpn_backbone`` (keyword-only, same defaults).

    Args:
        arch_or_name: an :class:`~crnas.Architecture`, a name (``"cr_resnet50"``, ``"resnet50"``, ...),
            JSON or a ``result.json`` path.
        weights_backbone: ``None``, ``"torchvision"``, a torchvision ``WeightsEnum`` or a state-dict
            path, inherited with :func:`crnas.weights.inherit` (report on the returned module's ``inherit_report``).
        trainable_layers: trainable stages counted from C5 (0..5; 5 includes the stem).
        returned_layers: stages fed to the FPN, 1 = C2 … 4 = C5 (default all four).
        extra_blocks: extra FPN levels (default ``LastLevelMaxPool``).
        norm_layer: the backbone's normalisation (``FrozenBatchNorm2d`` as torchvision's builders use
            with pretrained weights; ``nn.BatchNorm2d`` to train it).
        out_channels: FPN channels (torchvision's 256).
    """
    arch = get_architecture(arch_or_name)
    backbone = build(arch, norm_layer=norm_layer)
    report = None
    if weights_backbone is not None:
        report = inherit(backbone, torchvision_state_dict(arch.family, weights_backbone, progress=progress))
    fpn = fpn_extractor(backbone, trainable_layers, returned_layers, extra_blocks, out_channels=out_channels)
    fpn.inherit_report = report
    return fpn


_CLASSES = {"faster_rcnn_fpn": FasterRCNN, "mask_rcnn_fpn": MaskRCNN, "retinanet_fpn": RetinaNet, "fcos_fpn": FCOS}
_DENSE = ("retinanet_fpn", "fcos_fpn")


def fpn_returned_layers(detector: str) -> tuple[int, ...]:
    """The stages fed to the FPN as torchvision's builders choose them: C3–C5 for the dense
    detectors (RetinaNet, FCOS), C2–C5 for the R-CNNs. Rejects unknown detector names."""
    if detector not in DETECTORS:
        raise ValueError(f"detector: expected one of {', '.join(DETECTORS)}, got {detector!r}")
    return (2, 3, 4) if detector in _DENSE else (1, 2, 3, 4)


def fpn_extra_blocks(detector: str, fpn_channels: int) -> ExtraFPNBlock | None:
    """The FPN's extra levels: P6/P7 from P5 for the dense detectors; ``None`` (the FPN's
    max-pool P6) for the R-CNNs."""
    return LastLevelP6P7(fpn_channels, fpn_channels) if detector in _DENSE else None


def detection_limit(detector: str, max_detections: int) -> dict[str, Any]:
    """The torchvision argument that caps ``detector``'s detections per image at ``max_detections``:
    ``box_detections_per_img`` for the R-CNNs, ``detections_per_img`` for RetinaNet and FCOS
    (torchvision's defaults: 100, 300 for RetinaNet). Give it the ``max_detections`` the scoring uses
    (:func:`crnas.eval.score_detections`; COCO's 100): fewer cap the recall of dense images, more are
    not scored."""
    if detector not in DETECTORS:
        raise ValueError(f"detector: expected one of {', '.join(DETECTORS)}, got {detector!r}")
    if isinstance(max_detections, bool) or not isinstance(max_detections, int) or max_detections < 1:
        raise ValueError(f"max_detections: expected an int >= 1, got {max_detections!r}")
    return {"detections_per_img" if detector in _DENSE else "box_detections_per_img": max_detections}


def detections_per_image(model: nn.Module) -> int:
    """The cap on detections per image of a torchvision detector (R-CNN, RetinaNet or FCOS)."""
    heads = getattr(model, "roi_heads", model)
    cap = getattr(heads, "detections_per_img", None)
    if not isinstance(cap, int):
        raise TypeError(f"model: expected a torchvision R-CNN, RetinaNet or FCOS detector, got {type(model).__name__}")
    return cap


def assemble_detector(
    detector: str, backbone: nn.Module, *, num_classes: int, representation_size: int | None = None, **kwargs: Any
) -> nn.Module:
    """The torchvision detector ``detector`` around an FPN ``backbone`` (with ``out_channels``, laid
    out by :func:`fpn_returned_layers` and :func:`fpn_extra_blocks`). A ``representation_size``
    other than torchvision's 1024 gives R-CNNs a box head and predictor of that width (small heads
    for small data and CPUs); ``kwargs`` go to the detector. R-CNNs pool with
    :class:`crnas.nn.MultiScaleRoIAlign` (torchvision's pooler and defaults, its CPU path faster) unless
    ``kwargs`` give ``box_roi_pool`` / ``mask_roi_pool``."""
    cls = _CLASSES[detector]
    if detector in ("faster_rcnn_fpn", "mask_rcnn_fpn"):  # torchvision's poolers, with the fast CPU path
        kwargs.setdefault("box_roi_pool", MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2))
        if detector == "mask_rcnn_fpn":
            kwargs.setdefault("mask_roi_pool", MultiScaleRoIAlign(["0", "1", "2", "3"], 14, 2))
    if representation_size is None or detector not in ("faster_rcnn_fpn", "mask_rcnn_fpn"):
        return cls(backbone, num_classes=num_classes, **kwargs)
    fpn_channels = backbone.out_channels
    assert isinstance(fpn_channels, int), "an FPN backbone's out_channels is an int (torchvision's detector contract)"
    heads: dict[str, nn.Module] = {
        "box_head": TwoMLPHead(fpn_channels * 7 * 7, representation_size),
        "box_predictor": FastRCNNPredictor(representation_size, num_classes),
    }
    if detector == "mask_rcnn_fpn":  # torchvision's mask predictor, built here as num_classes goes to the heads
        heads["mask_predictor"] = MaskRCNNPredictor(256, 256, num_classes)
    return cls(backbone, num_classes=None, **heads, **kwargs)


#: Normalisations a backbone trained from scratch can use (:func:`norm_by_name`).
NORMS = ("batch", "group")


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups (Wu & He's default) where they divide ``channels`` with at least 2 channels
    each, else the most of 16, 8, 4, 2, 1 that do (narrow layers of reduced-width networks)."""
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0 and channels // g >= 2 or g == 1)
    return nn.GroupNorm(groups, channels)


def norm_by_name(name: str) -> Callable[[int], nn.Module]:
    """The normalisation ``name`` (one of :data:`NORMS`) of a backbone trained from scratch: ``batch``
    (``nn.BatchNorm2d``, torchvision's) or ``group`` (:func:`group_norm`, independent of the batch size: the
    recipe for detectors trained from scratch on small batches, docs/design.md#norm)."""
    if name not in NORMS:
        raise ValueError(f"norm: expected one of {', '.join(NORMS)}, got {name!r}")
    return nn.BatchNorm2d if name == "batch" else group_norm


def backbone_training(pretrained: bool, norm: str = "batch") -> tuple[int, Callable[[int], nn.Module]]:
    """Trainable stages and normalisation of a detector's backbone (torchvision's rule): all 5 stages
    with the normalisation ``norm`` (:func:`norm_by_name`) from scratch, 3 with ``FrozenBatchNorm2d``
    from ImageNet weights, which only ``norm = "batch"`` may ask for."""
    layer = norm_by_name(norm)
    if pretrained and norm != "batch":
        raise ValueError(f"norm: expected 'batch' with pretrained backbone weights (they keep frozen BatchNorm), got {norm!r}")
    return (3, FrozenBatchNorm2d) if pretrained else (5, layer)


def build_detector(
    detector: str,
    arch: ArchLike,
    *,
    num_classes: int,
    weights_backbone: Any = None,
    trainable_layers: int | None = None,
    norm_layer: Callable[[int], nn.Module] | None = None,
    fpn_channels: int = 256,
    representation_size: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """A torchvision detector (``faster_rcnn_fpn``, ``mask_rcnn_fpn``, ``retinanet_fpn`` or ``fcos_fpn``)
    with the CR backbone of ``arch``. ``kwargs`` go to the torchvision detector (``min_size``,
    ``max_size``, ...). Without ``weights_backbone``, the backbone is fully trainable with
    ``nn.BatchNorm2d`` (torchvision's rule); with it, 3 trainable stages and ``FrozenBatchNorm2d``.
    ``fpn_channels`` and ``representation_size`` (the R-CNN box head's width, torchvision's 1024)
    shrink the heads for small data and CPUs."""
    returned_layers = fpn_returned_layers(detector)
    default_layers, default_norm = backbone_training(pretrained=weights_backbone is not None)
    trainable_layers = default_layers if trainable_layers is None else trainable_layers
    norm_layer = default_norm if norm_layer is None else norm_layer
    backbone = cr_backbone_with_fpn(
        arch,
        weights_backbone=weights_backbone,
        trainable_layers=trainable_layers,
        returned_layers=returned_layers,
        extra_blocks=fpn_extra_blocks(detector, fpn_channels),
        norm_layer=norm_layer,
        out_channels=fpn_channels,
    )
    model = assemble_detector(detector, backbone, num_classes=num_classes, representation_size=representation_size, **kwargs)
    model.architecture = backbone.architecture
    return model


def _cr_resnet50_builder(detector: str, title: str) -> Callable[..., nn.Module]:
    def builder(
        *,
        arch: ArchLike = "cr_resnet50",
        weights: None = None,
        weights_backbone: Any = None,
        num_classes: int = 91,
        trainable_backbone_layers: int | None = None,
        **kwargs: Any,
    ) -> nn.Module:
        if weights is not None:
            raise ValueError(f"weights: expected None (no pretrained {title} weights are published), got {weights!r}")
        return build_detector(
            detector, arch, num_classes=num_classes, weights_backbone=weights_backbone, trainable_layers=trainable_backbone_layers, **kwargs
        )

    builder.__doc__ = f"""{title} with a CR-ResNet50 backbone (or any architecture via ``arch=``).

    Args mirror torchvision's ``*_resnet50_fpn`` builders: ``weights`` (must be None),
    ``weights_backbone`` (``"torchvision"`` inherits ImageNet weights), ``num_classes`` (91, COCO as
    torchvision counts it), ``trainable_backbone_layers``; other keyword arguments go to the detector.
    """
    return builder


fasterrcnn_cr_resnet50_fpn = _cr_resnet50_builder("faster_rcnn_fpn", "Faster R-CNN + FPN")
maskrcnn_cr_resnet50_fpn = _cr_resnet50_builder("mask_rcnn_fpn", "Mask R-CNN + FPN")
retinanet_cr_resnet50_fpn = _cr_resnet50_builder("retinanet_fpn", "RetinaNet")
fcos_cr_resnet50_fpn = _cr_resnet50_builder("fcos_fpn", "FCOS")
for _name, _fn in (
    ("fasterrcnn_cr_resnet50_fpn", fasterrcnn_cr_resnet50_fpn),
    ("maskrcnn_cr_resnet50_fpn", maskrcnn_cr_resnet50_fpn),
    ("retinanet_cr_resnet50_fpn", retinanet_cr_resnet50_fpn),
    ("fcos_cr_resnet50_fpn", fcos_cr_resnet50_fpn),
):
    _fn.__name__ = _fn.__qualname__ = _name
