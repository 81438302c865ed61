"""crnas.integrations.mmdet in mmdet 3.x (with mmcv's compiled ops, installed by make test): the README's
config built by mmdet's Runner, trained and run for a step; RetinaNet; ``frozen_stages``/``norm_eval``
against mmdet's own ResNet; the backbone contract."""

from __future__ import annotations

import re
import sys

import crnas.integrations.mmdet as crnas_mmdet
import mmdet.models  # noqa: F401  (the detectors, heads and mmcv ops; what MODELS.build imports on first use)
import pytest
import torch
from mmdet.models.backbones import ResNet
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

WIDTH = 0.125  # stage channels 32, 64, 128, 256


def _build(**kwargs):
    return MODELS.build(dict({"type": "CRResNet", "arch": "cr_resnet50", "width": WIDTH}, **kwargs))


def _batch(num_classes: int) -> dict:
    """Two small images with boxes, as mmdet's data loader hands them to ``train_step``/``test_step``."""
    return demo_mm_inputs(batch_size=2, image_shapes=[(3, 96, 128), (3, 128, 96)], num_items=[3, 2], num_classes=num_classes)


def _step(model, optim_cfg: dict, num_classes: int) -> None:
    """One training step (``train_step``: loss mode, backward, SGD update) and one ``test_step`` (predict mode)."""
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    losses = model.train_step(_batch(num_classes), optim_wrapper)
    assert losses and all(torch.isfinite(v).all() for v in losses.values()), losses
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert moved and moved <= trainable
    assert "backbone.layer4.6.conv2.weight" in moved and "backbone.conv1.weight" not in moved  # frozen_stages=1
    model.eval()
    with torch.no_grad():
        results = model.test_step(_batch(num_classes))
    assert len(results) == 2
    for sample in results:
        pred = sample.pred_instances
        assert pred.bboxes.shape[1] == 4 and len(pred.scores) == len(pred.labels) == len(pred.bboxes)
        assert torch.isfinite(pred.bboxes).all()


def test_readme_faster_rcnn_config(tmp_path, monkeypatch, readme_snippet, torchvision_resnet50):
    """The README's config as it stands (full-width CR-ResNet50 with the inherited checkpoint its comment
    writes), run through mmdet's Runner on tiny images."""
    monkeypatch.chdir(tmp_path)
    snippet = readme_snippet("# mmdetection 3.x config")
    once = snippet.splitlines()[1]
    assert once.startswith('# once: python -c "') and once.endswith('"')
    exec(once.removeprefix('# once: python -c "').removesuffix('"'), {})  # writes cr_resnet50_inherited.pth
    (tmp_path / "faster_rcnn_cr_r50.py").write_text(snippet)
    cfg = Config.fromfile(str(tmp_path / "faster_rcnn_cr_r50.py"))
    cfg.work_dir = str(tmp_path / "work")
    assert cfg.model.backbone.type == "CRResNet" and "depth" not in cfg.model.backbone  # _delete_ dropped ResNet's keys

    runner = Runner.from_cfg(cfg)
    model = runner.model
    assert type(model.backbone) is crnas_mmdet.CRResNet and model.backbone.architecture.blocks == [1, 3, 5, 7]
    model.init_weights()  # what Runner.train() does first: init_cfg loads the checkpoint
    checkpoint = torch.load("cr_resnet50_inherited.pth", weights_only=True)
    assert re.search(r"\d+ tensors copied, \d+ adapted, 0 left at initialisation", checkpoint["meta"]["crnas_inherit"])  # every block mapped
    state = model.backbone.state_dict()
    assert set(state) == set(checkpoint["state_dict"])  # no missing, no unexpected key
    for key, value in checkpoint["state_dict"].items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=key)
    # layer4 has 7 blocks, ResNet50's 3: block 6 repeats block 2 (crnas.weights.inherit)
    torch.testing.assert_close(state["layer4.6.conv2.weight"], torchvision_resnet50["layer4.2.conv2.weight"])
    _step(model, cfg.optim_wrapper, num_classes=80)


def test_retinanet(tmp_path):
    (tmp_path / "retinanet_cr_r50.py").write_text(
        "_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'\n"
        "custom_imports = dict(imports=['crnas.integrations.mmdet'], allow_failed_imports=False)\n"
        "model = dict(\n"
        "    backbone=dict(_delete_=True, type='CRResNet', arch='cr_resnet50', width=0.125, out_indices=(1, 2, 3),\n"
        "                  frozen_stages=1, norm_eval=True),\n"
        "    neck=dict(in_channels=[64, 128, 256], start_level=0, out_channels=32),\n"
        "    bbox_head=dict(num_classes=3, in_channels=32, feat_channels=32, stacked_convs=1))\n"
    )
    cfg = Config.fromfile(str(tmp_path / "retinanet_cr_r50.py"))
    model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 128, 128))
    assert [tuple(f.shape[1:]) for f in feats] == [(32, 128 // s, 128 // s) for s in (8, 16, 32, 64, 128)]
    _step(model, cfg.optim_wrapper, num_classes=3)


def _freezing(model: nn.Module) -> tuple[set[str], set[str], set[str]]:
    """Names of the parameters without gradient, of the BatchNorms in eval mode, of the modules in train mode."""
    return (
        {n for n, p in model.named_parameters() if not p.requires_grad},
        {n for n, m in model.named_modules() if isinstance(m, _BatchNorm) and not m.training},
        {n for n, m in model.named_modules() if m.training},
    )


@pytest.mark.parametrize("norm_eval", [True, False])
@pytest.mark.parametrize("frozen_stages", [-1, 0, 1, 2, 4])
@pytest.mark.parametrize(("arch", "stage_blocks"), [("resnet50", (3, 4, 6, 3)), ("cr_resnet50", (1, 3, 5, 7))])
def test_frozen_stages_and_norm_eval_match_mmdet_resnet(monkeypatch, arch, stage_blocks, frozen_stages, norm_eval):
    """The same parameters frozen, BatchNorms in eval mode and modules in train mode as mmdet's ResNet with the
    same blocks per stage and settings (module names are the same: torchvision's = mmdet's 'pytorch' style)."""
    monkeypatch.setitem(ResNet.arch_settings, 50, (ResNet.arch_settings[50][0], stage_blocks))
    settings = {"frozen_stages": frozen_stages, "norm_eval": norm_eval, "norm_cfg": {"type": "BN", "requires_grad": True}}
    ours = MODELS.build(dict(type="CRResNet", arch=arch, **settings))
    theirs = MODELS.build(dict(type="ResNet", depth=50, style="pytorch", **settings))
    assert set(ours.state_dict()) == set(theirs.state_dict())
    for mode in (True, False, True):
        ours.train(mode), theirs.train(mode)
        assert _freezing(ours) == _freezing(theirs), mode
    assert bool(_freezing(ours)[0]) == (frozen_stages >= 0)
    assert bool(_freezing(ours)[1]) == (norm_eval or frozen_stages >= 0)


def test_registered_in_mmdet_models():
    assert MODELS.module_dict["CRResNet"] is crnas_mmdet.CRResNet
    assert isinstance(_build(), crnas_mmdet.CRResNet)
    import mmengine.registry

    assert isinstance(mmengine.registry.MODELS.build({"type": "mmdet.CRResNet", "width": WIDTH}), crnas_mmdet.CRResNet)


def test_custom_imports_config_registers(monkeypatch, tmp_path):
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
    backbone = MODELS.build(cfg.model.backbone)
    assert type(backbone).__module__ == "crnas.integrations.mmdet"
    assert [o.shape[1] for o in backbone(torch.randn(1, 3, 64, 64))] == [64, 128, 256]


@pytest.mark.parametrize("out_indices", [(0, 1, 2, 3), (1, 2, 3), (2,)])
def test_forward_returns_tuple_of_out_indices(out_indices):
    backbone = _build(out_indices=out_indices).eval()
    outs = backbone(torch.randn(2, 3, 64, 96))
    assert isinstance(outs, tuple)
    channels, strides = [32, 64, 128, 256], [4, 8, 16, 32]
    assert [tuple(o.shape) for o in outs] == [(2, channels[i], 64 // strides[i], 96 // strides[i]) for i in out_indices]
    assert backbone.out_channels == [channels[i] for i in out_indices]


def test_state_dict_is_mmdet_resnet_state_dict():
    """Baseline allocation: the same keys and shapes as mmdet's ResNet50 (and torchvision's, less ``fc``),
    so either checkpoint loads strictly."""
    backbone = _build(arch="resnet50", width=None)
    theirs = MODELS.build(dict(type="ResNet", depth=50)).state_dict()
    assert {k: v.shape for k, v in backbone.state_dict().items()} == {k: v.shape for k, v in theirs.items()}
    backbone.load_state_dict(theirs)


def test_norm_cfg_variants():
    frozen_affine = _build(norm_cfg={"type": "BN", "requires_grad": False})
    assert all(
        not p.requires_grad for m in frozen_affine.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()
    )
    assert frozen_affine.layer1[0].conv1.weight.requires_grad
    gn = _build(norm_cfg={"type": "GN", "num_groups": 4, "requires_grad": True})
    assert isinstance(gn.bn1, nn.GroupNorm) and gn.bn1.num_groups == 4 and isinstance(gn.layer4[6].bn3, nn.GroupNorm)
    assert "layer4.6.bn3.weight" in gn.state_dict()  # torchvision's names whatever the norm
    gn.train()
    assert gn(torch.randn(1, 3, 64, 64))[-1].shape == (1, 256, 2, 2)
    sync = _build(norm_cfg={"type": "SyncBN", "requires_grad": True})
    assert isinstance(sync.layer2[0].bn2, nn.SyncBatchNorm)
    sync.train()  # norm_eval: SyncBN (a _BatchNorm) stays in eval, so CPU forward without a process group works
    assert not sync.layer2[0].bn2.training
    assert sync(torch.randn(1, 3, 64, 64))[0].shape == (1, 32, 16, 16)


def test_zero_init_residual_only_without_init_cfg():
    assert torch.all(_build().layer3[2].bn3.weight == 0)
    assert torch.all(_build(arch="resnet18").layer3[1].bn2.weight == 0)
    assert torch.all(_build(zero_init_residual=False).layer3[2].bn3.weight == 1)
    assert torch.all(_build(init_cfg={"type": "Kaiming", "layer": "Conv2d"}).layer3[2].bn3.weight == 1)


def test_init_cfg_kaiming():
    backbone = _build(init_cfg={"type": "Kaiming", "layer": "Conv2d"})
    with torch.no_grad():
        for m in backbone.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.zero_()
    backbone.init_weights()
    conv = backbone.layer3[0].conv2
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert conv.weight.abs().sum() > 0
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.25)


def test_save_inherited_checkpoint_fills_every_block(tmp_path):
    from crnas.models import ResNet50

    source = ResNet50(width=WIDTH, num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "resnet50.pth")
    report = crnas_mmdet.save_inherited_checkpoint("cr_resnet50", tmp_path / "cr.pth", weights=tmp_path / "resnet50.pth", width=WIDTH)
    assert report.adapted and not report.initialised
    backbone = _build(init_cfg={"type": "Pretrained", "checkpoint": str(tmp_path / "cr.pth")})
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
def test_invalid_arguments(kwargs, error, match):
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
