"""CR backbones in timm's model registry (`timm <https://github.com/huggingface/pytorch-image-models>`_).

Importing this module registers, through ``timm.models.register_model`` + ``build_model_with_cfg`` +
``generate_default_cfgs`` (see :func:`register`):

- the paper's architectures (arXiv:1912.11234, Fig. 4): ``cr_resnet50``, ``scr_resnet50``;
- the reallocatable baselines, prefixed so they cannot collide with timm's own models:
  ``crnas_resnet18``, ``crnas_resnet50``, ``crnas_resnet101``, ``crnas_resnext50_32x4d``,
  ``crnas_resnext101_32x4d``, ``crnas_mobilenet_v2``.

Every one supports ``timm.create_model(name, features_only=True, out_indices=...)`` (listed in
:data:`FEATURES_ONLY` and in each pretrained cfg's ``notes``, because timm's registry has no flag for it,
timm issue #1824). Feature indices: 0 = stem (stride 2), 1..4 = C2..C5 (strides 4..32).

Extra keyword arguments of ``timm.create_model`` understood by these models: ``arch`` (a searched
architecture of the same family: name, JSON, dict or ``result.json`` path), ``width`` (channel
multiplier), ``weights_backbone`` (``"torchvision"``, a torchvision ``WeightsEnum`` or a state-dict
path, inherited with :func:`crnas.weights.inherit`; the report is ``model.inherit_report``),
``norm_layer``, ``drop_rate``, ``global_pool``, ``in_chans``, ``num_classes``, and timm's ``device``/``dtype``.

.. note:: crnas publishes no trained weights, so ``pretrained=True`` raises; use ``weights_backbone=``
   (ImageNet weights of the family, mapped block by block) or timm's ``checkpoint_path=``.

.. note:: The models follow timm's model API: ``forward_features(x)`` returns the last feature map
   ``Tensor[N, C5, H/32, W/32]`` (timm's meaning), not crnas's list of C2..C5, which is
   ``forward_intermediates(x, indices=[1, 2, 3, 4], intermediates_only=True)``. Module and state-dict
   names stay torchvision's, so ``crnas.models.build(arch, num_classes=1000).load_state_dict(...)`` accepts
   their weights.
"""

# No ``from __future__ import annotations`` here: torch.fx copies the annotation of ``forward``'s
# argument into the traced module's code, and TorchScript cannot resolve a string one (timm's
# ``test_model_forward_fx_torchscript``: ``Unknown type name '_Tensor_'``).
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any, cast

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import SelectAdaptivePool2d
from timm.models import build_model_with_cfg, generate_default_cfgs, is_model, model_entrypoint, register_model
from torch import Tensor, nn

from crnas.arch import FAMILIES, PAPER_ARCHITECTURES, ArchLike
from crnas.integrations._common import architecture, stem_conv
from crnas.models import STAGE_STRIDES, CRMobileNetV2, CRResNet
from crnas.models.weights import TORCHVISION_NAMES, inherit, torchvision_state_dict

__all__ = ["FEATURES_ONLY", "MODEL_NAMES", "TimmCRMobileNetV2", "TimmCRResNet", "register"]

#: timm model name -> crnas architecture name: the paper's architectures as they are, the families
#: prefixed with ``crnas_``.
MODEL_NAMES: dict[str, str] = {**{name: name for name in PAPER_ARCHITECTURES}, **{f"crnas_{family}": family for family in FAMILIES}}

#: Models that support ``features_only=True`` (all of them); timm's registry has no such flag (#1824).
FEATURES_ONLY: tuple[str, ...] = tuple(MODEL_NAMES)

#: Feature levels: the stem and C2..C5.
NUM_FEATURE_LEVELS = 5

_POOL_TYPES = ("", "avg", "max", "avgmax", "catavgmax")
_STEM = "features[0] of a CRMobileNetV2 is its stem's Conv2dNormActivation (conv, norm, activation)"

#: Families with ImageNet weights in torchvision (what ``weights_backbone="torchvision"`` can inherit).
_TORCHVISION_FAMILIES = tuple(TORCHVISION_NAMES)


def _take_indices(indices: int | Sequence[int] | None, name: str = "indices") -> tuple[list[int], int]:
    """timm's ``feature_take_indices`` over the 5 levels, raising ``ValueError``: ``None`` = all, an int
    ``n`` = the last ``n``, a sequence = those indices (negative ones count from the end)."""
    n = NUM_FEATURE_LEVELS
    if indices is None:
        indices = n
    if isinstance(indices, bool):
        raise TypeError(f"{name}: expected an int or a sequence of ints, got bool")
    if isinstance(indices, int):
        if not 0 < indices <= n:
            raise ValueError(f"{name}: last-n must be in the range [1, {n}], got {indices}")
        take = list(range(n - indices, n))
    else:
        take = []
        for i in indices:
            idx = n + i if i < 0 else i
            if not 0 <= idx < n:
                raise ValueError(f"{name}: feature index {i} is out of range (0 to {n - 1}: stem, C2, C3, C4, C5)")
            take.append(idx)
        if not take:
            raise ValueError(f"{name}: expected at least one feature index, got {list(indices)}")
    return take, max(take)


def _pool(global_pool: str | None, num_classes: int, current: str) -> SelectAdaptivePool2d:
    """The pooling of a new head: ``global_pool``, or for ``None`` the ``current`` one ('avg' when there is
    none and the head has a classifier, which needs pooled features)."""
    if global_pool is None:
        global_pool = current or ("avg" if num_classes else "")
    if global_pool not in _POOL_TYPES:
        raise ValueError(f"global_pool: expected one of {_POOL_TYPES}, got {global_pool!r}")
    if not global_pool and num_classes:
        raise ValueError(f"global_pool: '' (no pooling) needs num_classes=0, got num_classes={num_classes}")
    return SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))


def _pool_type(pool: nn.Module | None) -> str:
    """The pool type of a head's pooling (torchvision's ``AdaptiveAvgPool2d`` before the first head: 'avg')."""
    return pool.pool_type if isinstance(pool, SelectAdaptivePool2d) else "avg"


def _on_device(device: torch.device | str | None) -> Any:
    """A context creating tensors on ``device`` (timm's ``device=`` factory argument); nothing for ``None``."""
    return torch.device(device) if device is not None else nullcontext()


def _like(module: nn.Module, model: nn.Module, reference: Tensor) -> nn.Module:
    """``module`` on ``reference``'s device and dtype, in ``model``'s train/eval mode (a new head joins the
    model as it is now)."""
    return module.to(device=reference.device, dtype=reference.dtype).train(model.training)


def _inherit(model: CRResNet | CRMobileNetV2, weights_backbone: Any, progress: bool) -> None:
    if weights_backbone is not None:
        model.inherit_report = inherit(
            model, torchvision_state_dict(model.architecture.family, weights_backbone, progress=progress)
        )


class TimmCRResNet(CRResNet):
    """A :class:`~crnas.models.CRResNet` with timm's model API (``feature_info``, ``forward_head``,
    ``forward_intermediates``, ``reset_classifier``, ...); created by ``timm.create_model``.

    Args:
        arch: a ResNet-series architecture (anything :func:`crnas.arch.get_architecture` accepts).
        num_classes: classifier size; 0 for none (``fc`` is ``nn.Identity``).
        in_chans: input channels (a new stem convolution when not 3).
        global_pool: ``'avg'``, ``'max'``, ``'avgmax'``, ``'catavgmax'`` or ``''`` (no pooling, needs
            ``num_classes=0``).
        drop_rate: dropout before the classifier.
        norm_layer: normalisation constructor (default ``nn.BatchNorm2d``).
        width: channel multiplier overriding the architecture's.
        weights_backbone: inherit ImageNet weights of the family (see the module docstring).
        progress: show the download progress of ``weights_backbone``.
        device, dtype: where and in which floating-point type the parameters are created (timm's factory
            arguments; ``device="meta"`` allocates nothing).
    """

    def __init__(
        self,
        arch: ArchLike,
        num_classes: int = 1000,
        in_chans: int = 3,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        norm_layer: Callable[[int], nn.Module] | None = None,
        width: float | None = None,
        weights_backbone: Any = None,
        progress: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        arch = architecture(arch, width, resnet_only=True, hint="; use crnas_mobilenet_v2 for MobileNetV2")
        with _on_device(device):
            super().__init__(arch.layout(), norm_layer=norm_layer)
            self.conv1 = stem_conv(self.conv1, in_chans)
        self.architecture = arch
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.num_features = self.head_hidden_size = self.stage_channels[-1]
        # timm's resnet has the same 5 levels; modules are top-level children, as FeatureListNet needs.
        self.feature_info = [{"num_chs": self.conv1.out_channels, "reduction": 2, "module": "relu"}] + [
            {"num_chs": c, "reduction": s, "module": f"layer{i + 1}"}
            for i, (c, s) in enumerate(zip(self.stage_channels, STAGE_STRIDES))
        ]
        self.to(dtype=dtype)
        self.reset_classifier(num_classes, global_pool)
        _inherit(self, weights_backbone, progress)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new, freshly initialised classifier (``fc``) of ``num_classes`` (0: none), on the model's device
        and dtype; ``global_pool=None`` keeps the current pooling ('avg' when there is none and
        ``num_classes > 0``)."""
        pool = _pool(global_pool, num_classes, _pool_type(self.avgpool))
        self.avgpool = _like(pool, self, self.conv1.weight)  # keeps torchvision's name (and its position among the children)
        self.num_classes = num_classes
        fc = nn.Linear(self.num_features * pool.feat_mult(), num_classes) if num_classes else nn.Identity()
        self.fc = _like(fc, self, self.conv1.weight)

    def forward_features(self, x: Tensor) -> Tensor:  # type: ignore[override]
        """The C5 feature map ``Tensor[N, C5, H/32, W/32]`` (timm's meaning of ``forward_features``)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.avgpool(x)
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """timm's intermediate-feature API: the levels in ``indices`` (0 = stem, 1..4 = C2..C5)."""
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt: expected 'NCHW', got {output_fmt!r}")
        take, max_index = _take_indices(indices)
        intermediates = []
        x = self.relu(self.bn1(self.conv1(x)))
        if 0 in take:
            intermediates.append(x)
        x = self.maxpool(x)
        layers = [self.layer1, self.layer2, self.layer3, self.layer4]
        for level, layer in enumerate(layers[:max_index] if stop_early else layers, start=1):
            x = layer(x)
            if level in take:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last of ``indices`` (and the head); returns the kept indices."""
        take, max_index = _take_indices(indices)
        for level in range(max_index + 1, NUM_FEATURE_LEVELS):
            setattr(self, f"layer{level}", nn.Sequential())
        if prune_head:
            self.reset_classifier(0, "")
        return take


class TimmCRMobileNetV2(CRMobileNetV2):
    """A :class:`~crnas.models.CRMobileNetV2` with timm's model API; created by ``timm.create_model``.

    Feature levels: 0 = ``features.1`` (stride 2), then the end of each stage C2..C5 (C5 after the final
    1×1 convolution, as in :mod:`crnas.detection`). ``timm.create_model(..., features_only=True)`` uses
    ``flatten_sequential`` (the feature extractor's children are ``features_0``, ``features_1``, ...);
    ``feature_cls='getter'`` keeps the model whole and calls :meth:`forward_intermediates`.

    Args are those of :class:`TimmCRResNet`; ``drop_rate`` (default 0.2, torchvision's) is the dropout
    inside ``classifier``.
    """

    def __init__(
        self,
        arch: ArchLike,
        num_classes: int = 1000,
        in_chans: int = 3,
        global_pool: str = "avg",
        drop_rate: float = 0.2,
        norm_layer: Callable[[int], nn.Module] | None = None,
        width: float | None = None,
        weights_backbone: Any = None,
        progress: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        arch = architecture(arch, width)
        if arch.family != "mobilenet_v2":
            raise ValueError(f"arch: expected a mobilenet_v2 architecture, got family {arch.family!r}")
        with _on_device(device):
            super().__init__(arch.layout(), norm_layer=norm_layer, dropout=drop_rate)
            stem = self.features[0]
            assert isinstance(stem, nn.Sequential) and isinstance(stem[0], nn.Conv2d), _STEM
            stem[0] = stem_conv(stem[0], in_chans)
        self.architecture = arch
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.num_features = self.head_hidden_size = self.last_channel
        self.feature_info = [{"num_chs": self.features[1].out_channels, "reduction": 2, "module": "features.1"}] + [
            {"num_chs": c, "reduction": s, "module": f"features.{e}"}
            for c, s, e in zip(self.stage_channels, STAGE_STRIDES, self.stage_ends)
        ]
        self.to(dtype=dtype)
        self.reset_classifier(num_classes, global_pool)
        _inherit(self, weights_backbone, progress)

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new classifier (``Dropout`` + ``Linear`` as torchvision's, initialised alike) of ``num_classes``, on
        the model's device and dtype."""
        first = self.features[0]
        assert isinstance(first, nn.Sequential) and isinstance(first[0], nn.Conv2d), _STEM
        stem = first[0].weight
        pool = _pool(global_pool, num_classes, _pool_type(getattr(self, "global_pool", None)))
        self.global_pool = _like(pool, self, stem)
        self.num_classes = num_classes
        if num_classes:
            linear = nn.Linear(self.num_features * pool.feat_mult(), num_classes)
            nn.init.normal_(linear.weight, 0, 0.01)
            nn.init.zeros_(linear.bias)
            self.classifier = _like(nn.Sequential(nn.Dropout(p=self.drop_rate), linear), self, stem)
        else:
            self.classifier = _like(nn.Identity(), self, stem)

    def forward_features(self, x: Tensor) -> Tensor:  # type: ignore[override]
        """The C5 feature map ``Tensor[N, 1280, H/32, W/32]``, after the final 1×1 convolution (timm's meaning of
        ``forward_features``)."""
        return self.features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.global_pool(x)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def _level_ends(self) -> list[int]:
        """Index in ``features`` of the last module of each feature level."""
        return [1, *self.stage_ends]

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """timm's intermediate-feature API: the levels in ``indices`` (0 = stem, 1..4 = C2..C5)."""
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt: expected 'NCHW', got {output_fmt!r}")
        take, max_index = _take_indices(indices)
        ends = self._level_ends()
        last = ends[max_index] if stop_early else len(self.features) - 1
        intermediates = []
        for i, module in enumerate(self.features):
            if i > last:
                break
            x = module(x)
            if i in ends and ends.index(i) in take:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the modules after the last of ``indices`` (and the head); returns the kept indices."""
        take, max_index = _take_indices(indices)
        # torch types Sequential.__getitem__ as returning a Module, slices included: a slice is a Sequential
        self.features = cast(nn.Sequential, self.features[: self._level_ends()[max_index] + 1])
        if prune_head:
            self.reset_classifier(0, "")
        return take


def _cfg(family: str, description: str, paper: tuple[str, str], **kwargs: Any) -> dict[str, Any]:
    mobilenet = family == "mobilenet_v2"
    return {
        "url": "",
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 0.875,
        "interpolation": "bilinear",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "features.0.0" if mobilenet else "conv1",
        "classifier": "classifier.1" if mobilenet else "fc",
        "license": "apache-2.0",
        "description": description,
        "paper_name": paper[0],
        "paper_ids": paper[1],
        "origin_url": "https://arxiv.org/abs/1912.11234",
        "notes": (
            "features_only=True supported: out_indices 0..4 = stem (stride 2), C2, C3, C4, C5 (strides 4, 8, 16, 32)",
            f"no published weights: pass weights_backbone='torchvision' to inherit torchvision's {family} ImageNet weights"
            if family in _TORCHVISION_FAMILIES
            else "no published weights (torchvision has none of this family either)",
        ),
        **kwargs,
    }


_CRNAS = ("Computation Reallocation for Object Detection", "arXiv:1912.11234")
_RESNET = ("Deep Residual Learning for Image Recognition", "arXiv:1512.03385")
_RESNEXT = ("Aggregated Residual Transformations for Deep Neural Networks", "arXiv:1611.05431")
_MOBILENETV2 = ("MobileNetV2: Inverted Residuals and Linear Bottlenecks", "arXiv:1801.04381")

default_cfgs = generate_default_cfgs(
    {
        "cr_resnet50": _cfg(
            "resnet50", "CR-ResNet50: stage and dilation reallocation of ResNet50 (CR-NAS, Fig. 4)", _CRNAS
        ),
        "scr_resnet50": _cfg(
            "resnet50", "SCR-ResNet50: stage reallocation [1, 3, 5, 7] of ResNet50 (CR-NAS, Fig. 4)", _CRNAS
        ),
        "crnas_resnet18": _cfg(
            "resnet18", "ResNet18 built by crnas (torchvision's layout), a reallocatable baseline", _RESNET
        ),
        "crnas_resnet50": _cfg(
            "resnet50", "ResNet50 built by crnas (torchvision's layout), a reallocatable baseline", _RESNET
        ),
        "crnas_resnet101": _cfg(
            "resnet101", "ResNet101 built by crnas (torchvision's layout), a reallocatable baseline", _RESNET
        ),
        "crnas_resnext50_32x4d": _cfg(
            "resnext50_32x4d", "ResNeXt50-32x4d built by crnas, a reallocatable baseline", _RESNEXT
        ),
        "crnas_resnext101_32x4d": _cfg(
            "resnext101_32x4d", "ResNeXt101-32x4d built by crnas, a reallocatable baseline", _RESNEXT
        ),
        "crnas_mobilenet_v2": _cfg(
            "mobilenet_v2", "MobileNetV2 built by crnas (torchvision's layout), a reallocatable baseline", _MOBILENETV2
        ),
    }
)


def _no_weights_message(variant: str, family: str) -> str:
    inherit = (
        f"pass weights_backbone='torchvision' (with pretrained=False) to inherit torchvision's ImageNet {family} "
        "weights block by block (crnas.weights.inherit; the report is model.inherit_report), or "
        if family in _TORCHVISION_FAMILIES
        else ""
    )
    return f"pretrained=True: crnas publishes no pretrained weights for {variant!r}; {inherit}load your own with checkpoint_path=..."


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    arch = architecture(kwargs.pop("arch", MODEL_NAMES[variant]))
    family = architecture(MODEL_NAMES[variant]).family
    if pretrained:
        raise ValueError(_no_weights_message(variant, family))
    if arch.family != family:
        raise ValueError(
            f"arch: {variant} builds {family} architectures, got a {arch.family} one; use crnas_{arch.family}"
        )
    if kwargs.get("features_only") and "out_indices" in kwargs:
        _take_indices(kwargs["out_indices"], "out_indices")
    mobilenet = family == "mobilenet_v2"
    cls = TimmCRMobileNetV2 if mobilenet else TimmCRResNet
    created: list[nn.Module] = []

    def construct(**model_kwargs: Any) -> nn.Module:
        created.append(cls(arch, **model_kwargs))
        return created[-1]

    # MobileNetV2's levels sit inside the `features` Sequential: FeatureListNet must look one level down.
    feature_cfg = {"flatten_sequential": True} if mobilenet else None
    model = build_model_with_cfg(construct, variant, pretrained, feature_cfg=feature_cfg, **kwargs)
    if model is not created[0]:  # a features_only wrapper: keep what crnas users look for
        model.architecture = created[0].architecture
        if hasattr(created[0], "inherit_report"):
            model.inherit_report = created[0].inherit_report
    return model


def cr_resnet50(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """CR-ResNet50 (CR-NAS, arXiv:1912.11234, Fig. 4): blocks [1, 3, 5, 7], searched dilations."""
    return _create("cr_resnet50", pretrained, **kwargs)


def scr_resnet50(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """SCR-ResNet50 (CR-NAS, arXiv:1912.11234, Fig. 4): blocks [1, 3, 5, 7], no dilation."""
    return _create("scr_resnet50", pretrained, **kwargs)


def crnas_resnet18(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNet18 as crnas builds it ([2, 2, 2, 2]); ``arch=`` takes a searched resnet18 architecture."""
    return _create("crnas_resnet18", pretrained, **kwargs)


def crnas_resnet50(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNet50 as crnas builds it ([3, 4, 6, 3]); ``arch=`` takes a searched resnet50 architecture."""
    return _create("crnas_resnet50", pretrained, **kwargs)


def crnas_resnet101(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNet101 as crnas builds it ([3, 4, 23, 3]); ``arch=`` takes a searched resnet101 architecture."""
    return _create("crnas_resnet101", pretrained, **kwargs)


def crnas_resnext50_32x4d(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNeXt50-32x4d as crnas builds it; ``arch=`` takes a searched resnext50_32x4d architecture."""
    return _create("crnas_resnext50_32x4d", pretrained, **kwargs)


def crnas_resnext101_32x4d(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNeXt101-32x4d as crnas builds it; ``arch=`` takes a searched resnext101_32x4d architecture."""
    return _create("crnas_resnext101_32x4d", pretrained, **kwargs)


def crnas_mobilenet_v2(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """MobileNetV2 as crnas builds it; ``arch=`` takes a searched mobilenet_v2 architecture."""
    return _create("crnas_mobilenet_v2", pretrained, **kwargs)


_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {
    fn.__name__: fn
    for fn in (
        scr_resnet50,
        cr_resnet50,
        crnas_resnet18,
        crnas_resnet50,
        crnas_resnet101,
        crnas_resnext50_32x4d,
        crnas_resnext101_32x4d,
        crnas_mobilenet_v2,
    )
}


def register() -> list[str]:
    """Register the models with timm (``register_model``); idempotent. Returns their names.

    Raises:
        RuntimeError: timm already has a model of one of these names that crnas did not register.
    """
    for name, fn in _ENTRYPOINTS.items():
        if is_model(name):
            existing = model_entrypoint(name)
            if getattr(existing, "__module__", None) == __name__:
                continue  # registered by this module (also after an importlib.reload)
            raise RuntimeError(
                f"timm already has a model named {name!r} (from {existing.__module__}); crnas will not overwrite it"
            )
        register_model(fn)
    return list(_ENTRYPOINTS)


register()
