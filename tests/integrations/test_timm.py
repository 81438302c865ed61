"""crnas.integrations.timm: registration, create_model (classifier and features_only), the timm model API."""

from __future__ import annotations

import warnings

import crnas.integrations.timm as crnas_timm
import pytest
import timm
import torch
from crnas.models import build

WIDTH = 0.125
X = torch.randn(2, 3, 64, 64)


def _tensors(out):
    return list(out.values()) if isinstance(out, dict) else list(out)


def test_all_models_registered_without_touching_timms_own():
    assert set(crnas_timm.MODEL_NAMES) <= set(timm.list_models())
    assert timm.models.model_entrypoint("resnet50").__module__ == "timm.models.resnet"
    assert timm.models.model_entrypoint("mobilenetv2_100").__module__.startswith("timm.models")


def test_register_is_idempotent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # timm warns when a name is overwritten
        assert crnas_timm.register() == list(crnas_timm.MODEL_NAMES)
        crnas_timm.register()


def test_register_refuses_to_overwrite_a_foreign_model(monkeypatch):
    monkeypatch.setitem(crnas_timm._ENTRYPOINTS, "resnet50", crnas_timm.crnas_resnet50)
    with pytest.raises(RuntimeError, match="timm already has a model named 'resnet50'"):
        crnas_timm.register()


def test_features_only_support_is_explicit():
    assert tuple(crnas_timm.MODEL_NAMES) == crnas_timm.FEATURES_ONLY
    for name in crnas_timm.FEATURES_ONLY:
        cfg = timm.models.get_pretrained_cfg(name)
        assert any("features_only=True supported" in note for note in cfg.notes), name
        assert not cfg.has_weights


@pytest.mark.parametrize("name", crnas_timm.FEATURES_ONLY)
def test_features_only_feature_info_matches_tensors(name):
    model = timm.create_model(name, features_only=True, width=WIDTH)
    info = model.feature_info
    assert info.reduction() == [2, 4, 8, 16, 32]
    arch = model.architecture
    assert info.channels()[1:] == build(arch).stage_channels
    with torch.no_grad():
        out = model(X)
    assert [tuple(t.shape) for t in out] == [
        (2, c, 64 // r, 64 // r) for c, r in zip(info.channels(), info.reduction())
    ]
    if arch.family == "mobilenet_v2":
        assert info.module_name()[0] == "features.1"
    else:
        assert info.module_name() == ["relu", "layer1", "layer2", "layer3", "layer4"]


@pytest.mark.parametrize("name", ["cr_resnet50", "crnas_mobilenet_v2"])
@pytest.mark.parametrize("feature_cls", ["list", "dict", "hook", "getter"])
def test_feature_extractors_agree_with_forward_intermediates(name, feature_cls):
    torch.manual_seed(0)
    model = timm.create_model(name, width=WIDTH).eval()
    torch.manual_seed(0)
    features = timm.create_model(
        name, width=WIDTH, features_only=True, feature_cls=feature_cls, out_indices=(1, 2, 3, 4)
    ).eval()
    with torch.no_grad():
        expected = model.forward_intermediates(X, indices=[1, 2, 3, 4], intermediates_only=True)
        got = _tensors(features(X))
    assert len(got) == 4
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)


def test_forward_intermediates_matches_crnas_stages():
    model = timm.create_model("cr_resnet50", width=WIDTH).eval()
    reference = build(model.architecture, num_classes=1000).eval()
    reference.load_state_dict(model.state_dict())  # same (torchvision) keys, strict
    with torch.no_grad():
        final, levels = model.forward_intermediates(X)
        for a, b in zip(levels[1:], reference.forward_features(X)):
            torch.testing.assert_close(a, b)
        torch.testing.assert_close(final, model.forward_features(X))
        torch.testing.assert_close(model(X), reference(X))


def test_classifier_num_classes_and_pooling():
    model = timm.create_model("cr_resnet50", width=WIDTH, num_classes=7)
    assert model(X).shape == (2, 7) and model.num_classes == 7
    assert model.get_classifier().out_features == 7
    assert timm.create_model("cr_resnet50", width=WIDTH, num_classes=0)(X).shape == (2, 256)
    unpooled = timm.create_model("cr_resnet50", width=WIDTH, num_classes=0, global_pool="")
    assert unpooled(X).shape == (2, 256, 2, 2)
    model.reset_classifier(3, "catavgmax")
    assert model(X).shape == (2, 3) and model.forward_head(model.forward_features(X), pre_logits=True).shape == (2, 512)
    mobilenet = timm.create_model("crnas_mobilenet_v2", width=WIDTH, num_classes=5)
    assert mobilenet(X).shape == (2, 5)
    assert mobilenet.pretrained_cfg["classifier"] == "classifier.1"
    with pytest.raises(ValueError, match=r"global_pool: '' \(no pooling\) needs num_classes=0"):
        timm.create_model("crnas_resnet18", width=WIDTH, global_pool="")


def test_in_chans():
    model = timm.create_model("crnas_resnet18", width=WIDTH, in_chans=1, num_classes=2)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 2)
    model = timm.create_model("crnas_mobilenet_v2", width=WIDTH, in_chans=4, features_only=True)
    assert model(torch.randn(2, 4, 32, 32))[-1].shape == (2, 1280, 1, 1)


def test_prune_intermediate_layers():
    model = timm.create_model("cr_resnet50", width=WIDTH)
    assert model.prune_intermediate_layers([1, 2]) == [1, 2]
    assert len(model.layer3) == 0 and len(model.layer2) == 3 and model.num_classes == 0
    assert [t.shape[1] for t in model.forward_intermediates(X, indices=[1, 2], intermediates_only=True)] == [32, 64]
    mobilenet = timm.create_model("crnas_mobilenet_v2", width=WIDTH)
    mobilenet.prune_intermediate_layers(2)  # the last two: C4, C5 (nothing to prune)
    assert len(mobilenet.features) == 19


def test_pretrained_true_explains_how_to_inherit():
    with pytest.raises(
        ValueError, match=r"no pretrained weights for 'cr_resnet50'; pass weights_backbone='torchvision'.*resnet50"
    ):
        timm.create_model("cr_resnet50", pretrained=True)
    with pytest.raises(
        ValueError, match=r"no pretrained weights for 'crnas_resnext101_32x4d'; load your own with checkpoint_path"
    ):
        timm.create_model("crnas_resnext101_32x4d", pretrained=True)


def test_weights_backbone_inherits_into_features_only_model(tmp_path):
    from crnas.models import ResNet50

    source = ResNet50(width=WIDTH, num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "resnet50.pth")
    model = timm.create_model(
        "cr_resnet50", width=WIDTH, features_only=True, weights_backbone=tmp_path / "resnet50.pth"
    )
    assert model.inherit_report.adapted and not model.inherit_report.initialised
    # layer4 has 7 blocks, the source 3: block 6 repeats the source's block 2 (crnas.weights.inherit)
    torch.testing.assert_close(model.layer4[6].conv2.weight, source.layer4[2].conv2.weight)
    torch.testing.assert_close(model.conv1.weight, source.conv1.weight)


def test_searched_architecture_through_arch():
    from crnas import Architecture

    arch = Architecture("resnet50", [2, 4, 6, 4], width=WIDTH).to_json()  # what a search writes
    model = timm.create_model("crnas_resnet50", arch=arch, features_only=True, out_indices=(4,))
    assert model.architecture.blocks == [2, 4, 6, 4]
    assert model(X)[0].shape == (2, 256, 2, 2)
    with pytest.raises(
        ValueError, match="arch: crnas_resnet50 builds resnet50 architectures, got a resnet18 one; use crnas_resnet18"
    ):
        timm.create_model("crnas_resnet50", arch="resnet18")


@pytest.mark.parametrize(
    ("out_indices", "match"),
    [
        ((1, 5), r"out_indices: feature index 5 is out of range \(0 to 4"),
        ((), "at least one feature index"),
        (6, r"range \[1, 5\]"),
    ],
)
def test_invalid_out_indices(out_indices, match):
    with pytest.raises(ValueError, match=match):
        timm.create_model("cr_resnet50", width=WIDTH, features_only=True, out_indices=out_indices)


@pytest.mark.parametrize("name", ["cr_resnet50", "crnas_mobilenet_v2"])
def test_device_dtype_and_new_heads_follow_the_model(name):
    model = timm.create_model(name, width=WIDTH, device="meta", dtype=torch.float64).eval()
    tensors = [*model.parameters(), *model.buffers()]
    assert all(t.device.type == "meta" for t in tensors)
    assert all(t.dtype == torch.float64 for t in tensors if t.is_floating_point())
    model.reset_classifier(0, "")
    model.reset_classifier(3)  # keeps the current pooling; with none, average (a classifier needs pooled features)
    classifier = model.get_classifier()
    assert [p.shape[0] for p in classifier.parameters()] == [3, 3]
    assert all(p.device.type == "meta" and p.dtype == torch.float64 for p in classifier.parameters())
    assert not any(m.training for m in model.modules())
    assert model(torch.randn(2, 3, 64, 64, device="meta", dtype=torch.float64)).shape == (2, 3)
