"""crnas.integrations.mmdet: registration in mmdet 3.x's MODELS and mmdet's ResNet backbone contract.

``mmdet.registry.MODELS.get/build`` first import ``mmdet.models``, which needs mmcv's compiled ops
(``mmcv._ext``; only mmcv-lite installs here). The ``registry`` fixture marks that import as done, so
the rest of the lookup (config ``type='CRResNet'`` -> class -> instance) runs as it would in mmdet.
"""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

pytest.importorskip("mmdet")
pytest.importorskip("mmengine")
crnas_mmdet = pytest.importorskip("crnas.integrations.mmdet")

from mmdet.registry import MODELS

WIDTH = 0.125  # stage channels 32, 64, 128, 256


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(MODELS, "_imported", True)  # skip importing mmdet.models (needs mmcv._ext)
    return MODELS


def _build(registry, **kwargs):
    return registry.build(dict({"type": "CRResNet", "arch": "cr_resnet50", "width": WIDTH}, **kwargs))


def test_registered_in_mmdet_models():
    assert MODELS.module_dict["CRResNet"] is crnas_mmdet.CRResNet


def test_build_from_config_dict(registry):
    backbone = _build(registry)
    assert isinstance(backbone, crnas_mmdet.CRResNet)
    assert backbone.architecture.blocks == [1, 3, 5, 7]
    assert registry.get("CRResNet") is crnas_mmdet.CRResNet
    import mmengine.registry

    assert isinstance(mmengine.registry.MODELS.build({"type": "mmdet.CRResNet", "width": WIDTH}), crnas_mmdet.CRResNet)


def test_custom_imports_config_registers(registry, monkeypatch, tmp_path):
    from mmengine.config import Config

    # forget the module and its registration, so that only the config's custom_imports brings them back
    monkeypatch.delitem(sys.modules, "crnas.integrations.mmdet")
    monkeypatch.delitem(MODELS._module_dict, "CRResNet")
    path = tmp_path / "retinanet_cr_r50.py"
    path.write_text(
        "custom_imports = dict(imports=['crnas.integrations.mmdet'], allow_failed_imports=False)\n"
        "model = dict(backbone=dict(type='CRResNet', arch='cr_resnet50', width=0.125, out_indices=(1, 2, 3), "
        "frozen_stages=1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=True))\n"
    )
    cfg = Config.fromfile(str(path))
    backbone = registry.build(cfg.model.backbone)
    assert type(backbone).__module__ == "crnas.integrations.mmdet"
    assert [o.shape[1] for o in backbone(torch.randn(1, 3, 64, 64))] == [64, 128, 256]


@pytest.mark.parametrize("out_indices", [(0, 1, 2, 3), (1, 2, 3), (2,)])
def test_forward_returns_tuple_of_out_indices(registry, out_indices):
    backbone = _build(registry, out_indices=out_indices).eval()
    outs = backbone(torch.randn(2, 3, 64, 96))
    assert isinstance(outs, tuple)
    channels, strides = [32, 64, 128, 256], [4, 8, 16, 32]
    assert [tuple(o.shape) for o in outs] == [(2, channels[i], 64 // strides[i], 96 // strides[i]) for i in out_indices]
    assert backbone.out_channels == [channels[i] for i in out_indices]


def test_state_dict_keys_are_torchvision_resnet_keys(registry):
    import torchvision

    backbone = _build(registry, arch="resnet50", width=None)
    with torch.device("meta"):
        reference = torchvision.models.resnet50()
    assert set(backbone.state_dict()) == {k for k in reference.state_dict() if not k.startswith("fc.")}
    assert {k: v.shape for k, v in backbone.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items() if not k.startswith("fc.")
    }


def _frozen(module: nn.Module) -> bool:
    """No trainable parameter, and every norm in eval mode (what freezing means for mmdet's ResNet)."""
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    return all(not p.requires_grad for p in module.parameters()) and not any(m.training for m in norms)


@pytest.mark.parametrize("frozen_stages", [-1, 0, 1, 4])
def test_frozen_stages_like_mmdet_resnet(registry, frozen_stages):
    backbone = _build(registry, frozen_stages=frozen_stages, norm_eval=False)
    backbone.train()
    stem_frozen = frozen_stages >= 0
    assert _frozen(backbone.conv1) == stem_frozen and _frozen(backbone.bn1) == stem_frozen
    for i in range(1, 5):
        layer = getattr(backbone, f"layer{i}")
        assert _frozen(layer) == (i <= frozen_stages), (i, frozen_stages)
        if i > frozen_stages:
            assert all(p.requires_grad for p in layer.parameters()) and layer.training


def test_norm_eval_keeps_batchnorm_in_eval(registry):
    backbone = _build(registry).train()
    bns = [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert backbone.layer1.training and all(p.requires_grad for p in backbone.parameters())
    assert all(m.training for m in _build(registry, norm_eval=False).train().modules() if isinstance(m, nn.BatchNorm2d))


def test_norm_cfg_variants(registry):
    frozen_affine = _build(registry, norm_cfg={"type": "BN", "requires_grad": False})
    assert all(
        not p.requires_grad for m in frozen_affine.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()
    )
    assert frozen_affine.layer1[0].conv1.weight.requires_grad
    gn = _build(registry, norm_cfg={"type": "GN", "num_groups": 4, "requires_grad": True})
    assert isinstance(gn.bn1, nn.GroupNorm) and gn.bn1.num_groups == 4 and isinstance(gn.layer4[6].bn3, nn.GroupNorm)
    assert "layer4.6.bn3.weight" in gn.state_dict()  # torchvision's names whatever the norm
    gn.train()
    assert gn(torch.randn(1, 3, 64, 64))[-1].shape == (1, 256, 2, 2)
    sync = _build(registry, norm_cfg={"type": "SyncBN", "requires_grad": True})
    assert isinstance(sync.layer2[0].bn2, nn.SyncBatchNorm)
    sync.train()  # norm_eval: SyncBN (a _BatchNorm) stays in eval, so CPU forward without a process group works
    assert not sync.layer2[0].bn2.training
    assert sync(torch.randn(1, 3, 64, 64))[0].shape == (1, 32, 16, 16)


def test_zero_init_residual_only_without_init_cfg(registry):
    assert torch.all(_build(registry).layer3[2].bn3.weight == 0)
    assert torch.all(_build(registry, arch="resnet18").layer3[1].bn2.weight == 0)
    assert torch.all(_build(registry, zero_init_residual=False).layer3[2].bn3.weight == 1)
    assert torch.all(_build(registry, init_cfg={"type": "Kaiming", "layer": "Conv2d"}).layer3[2].bn3.weight == 1)


def test_init_cfg_kaiming(registry):
    backbone = _build(registry, init_cfg={"type": "Kaiming", "layer": "Conv2d"})
    with torch.no_grad():
        for m in backbone.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.zero_()
    backbone.init_weights()
    conv = backbone.layer3[0].conv2
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert conv.weight.abs().sum() > 0
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.25)


def test_init_cfg_pretrained_from_local_checkpoint(registry, tmp_path):
    source = _build(registry)
    torch.nn.init.normal_(source.layer4[6].conv2.weight)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "backbone.pth")
    backbone = _build(registry, init_cfg={"type": "Pretrained", "checkpoint": str(tmp_path / "backbone.pth")})
    backbone.init_weights()
    for key, value in source.state_dict().items():
        torch.testing.assert_close(backbone.state_dict()[key], value)


def test_save_inherited_checkpoint_fills_every_block(registry, tmp_path):
    from crnas.models import ResNet50

    source = ResNet50(width=WIDTH, num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "resnet50.pth")
    report = crnas_mmdet.save_inherited_checkpoint(
        "cr_resnet50", tmp_path / "cr.pth", weights=tmp_path / "resnet50.pth", width=WIDTH
    )
    assert report.adapted and not report.initialised
    backbone = _build(registry, init_cfg={"type": "Pretrained", "checkpoint": str(tmp_path / "cr.pth")})
    backbone.init_weights()
    # layer4 has 7 blocks, the source 3: block 6 repeats the source's block 2 (crnas.weights.inherit)
    torch.testing.assert_close(backbone.layer4[6].conv2.weight, source.layer4[2].conv2.weight)
    torch.testing.assert_close(backbone.layer1[0].bn1.running_var, source.layer1[0].bn1.running_var)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"arch": "mobilenet_v2"}, ValueError, "expected a ResNet-series architecture.*TIMMBackbone"),
        ({"out_indices": (0, 4)}, ValueError, r"out_indices: expected stage indices in the range \[0, 3\]"),
        ({"out_indices": (1, 1)}, ValueError, "out_indices: expected distinct"),
        ({"frozen_stages": 5}, ValueError, r"frozen_stages: expected an int in the range \[-1, 4\], got 5"),
        ({"norm_cfg": {"requires_grad": True}}, ValueError, "norm_cfg: expected a dict with a 'type' key"),
        ({"width": "wide"}, TypeError, "width: expected a number or None, got str"),
    ],
)
def test_invalid_arguments(registry, kwargs, error, match):
    with pytest.raises(error, match=match):
        crnas_mmdet.CRResNet(**dict({"arch": "cr_resnet50", "width": WIDTH}, **kwargs))


def test_registration_refuses_a_foreign_crresnet(monkeypatch):
    class Foreign(nn.Module):
        pass

    monkeypatch.setitem(MODELS._module_dict, "CRResNet", Foreign)
    with pytest.raises(RuntimeError, match="already has a 'CRResNet'"):
        crnas_mmdet._register()
    monkeypatch.setitem(MODELS._module_dict, "CRResNet", crnas_mmdet.CRResNet)
    crnas_mmdet._register()  # re-registering its own class is fine
    assert MODELS.module_dict["CRResNet"] is crnas_mmdet.CRResNet
