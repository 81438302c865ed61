"""CR backbones inside torchvision detectors, and weight inheritance."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from crnas import Architecture, detection, models
from crnas.weights import InheritReport, inherit, torchvision_state_dict
from torch import nn
from torchvision.models.detection import backbone_utils
from torchvision.ops import FrozenBatchNorm2d

TINY = Architecture.paper("cr_resnet50").replace(width=0.125)


def images_and_targets(masks: bool = False):
    images = [torch.rand(3, 64, 80), torch.rand(3, 72, 64)]
    targets = []
    for img, box in zip(images, ([4.0, 6.0, 40.0, 50.0], [10.0, 2.0, 30.0, 33.0])):
        t = {"boxes": torch.tensor([box]), "labels": torch.tensor([1])}
        if masks:
            m = torch.zeros(1, *img.shape[1:], dtype=torch.uint8)
            m[:, int(box[1]) : int(box[3]), int(box[0]) : int(box[2])] = 1
            t["masks"] = m
        targets.append(t)
    return images, targets


@pytest.mark.parametrize("detector", detection.DETECTORS)
@pytest.mark.parametrize("arch", [TINY, Architecture.baseline("mobilenet_v2").replace(width=0.25)], ids=["cr_resnet50", "mobilenet_v2"])
def test_training_step_and_eval(detector, arch):
    torch.manual_seed(0)
    model = detection.build_detector(detector, arch, num_classes=3, min_size=64, max_size=96)
    assert model.architecture == arch
    images, targets = images_and_targets(masks=detector == "mask_rcnn_fpn")
    model.train()
    losses = model(images, targets)
    assert losses and all(math.isfinite(v.item()) for v in losses.values())
    sum(losses.values()).backward()
    first_conv = model.backbone.body.conv1 if hasattr(model.backbone.body, "conv1") else model.backbone.body["0"][0]
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0
    model.eval()
    with torch.inference_mode():
        out = model(images)
    assert len(out) == 2 and {"boxes", "scores", "labels"} <= out[0].keys()


@pytest.mark.parametrize("detector", ["faster_rcnn_fpn", "mask_rcnn_fpn"])
def test_small_heads_train(detector):
    """``representation_size`` shrinks the box head; Mask R-CNN keeps torchvision's mask head for the classes."""
    torch.manual_seed(0)
    model = detection.build_detector(detector, TINY, num_classes=3, fpn_channels=16, representation_size=32, min_size=64, max_size=96)
    assert model.roi_heads.box_head.fc7.out_features == 32 and model.roi_heads.box_predictor.cls_score.out_features == 3
    if detector == "mask_rcnn_fpn":
        assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 3
    images, targets = images_and_targets(masks=detector == "mask_rcnn_fpn")
    losses = model(images, targets)
    assert all(math.isfinite(v.item()) for v in losses.values())


def test_builders_accept_any_architecture():
    for builder in (detection.fasterrcnn_cr_resnet50_fpn, detection.retinanet_cr_resnet50_fpn):
        model = builder(arch=TINY, num_classes=5, min_size=64, max_size=64)
        assert model.architecture == TINY
    assert detection.fcos_cr_resnet50_fpn(arch="scr_resnet50", num_classes=2).architecture == Architecture.paper("scr_resnet50")
    with pytest.raises(ValueError, match="weights: expected None"):
        detection.maskrcnn_cr_resnet50_fpn(weights="COCO_V1")
    with pytest.raises(ValueError, match="detector: expected one of faster_rcnn_fpn"):
        detection.build_detector("yolo", TINY, num_classes=2)


@pytest.mark.parametrize("trainable", [0, 1, 3, 5])
def test_freezing_matches_torchvision(trainable):
    """Same trainable parameters as torchvision's resnet_fpn_backbone for the same network."""
    ours = detection.cr_backbone_with_fpn("resnet50", trainable_layers=trainable)
    theirs = backbone_utils.resnet_fpn_backbone(backbone_name="resnet50", weights=None, trainable_layers=trainable)
    trainable_names = lambda m: {n for n, p in m.named_parameters() if p.requires_grad}  # noqa: E731
    assert trainable_names(ours) == trainable_names(theirs)
    assert all(isinstance(m, FrozenBatchNorm2d) for m in ours.body.modules() if "Norm" in type(m).__name__)
    x = torch.randn(1, 3, 64, 64)
    assert list(ours(x)) == list(theirs(x)) == ["0", "1", "2", "3", "pool"]
    assert ours.out_channels == 256
    with pytest.raises(ValueError, match=r"trainable_layers: expected an int in the range \[0, 5\], got 6"):
        detection.cr_backbone_with_fpn("resnet50", trainable_layers=6)
    with pytest.raises(ValueError, match=r"returned_layers: expected values in the range \[1, 4\], got \[0, 1\]"):
        detection.cr_backbone_with_fpn("resnet50", returned_layers=[0, 1])


def test_torchvision_utilities_accept_the_models():
    resnet = models.CRResNet50(width=0.25, norm_layer=FrozenBatchNorm2d)
    fpn = backbone_utils._resnet_fpn_extractor(resnet, 3)
    assert [f.shape[1] for f in fpn(torch.randn(1, 3, 64, 64)).values()] == [256] * 5
    mobile = models.MobileNetV2(width=0.5)
    fpn = backbone_utils._mobilenet_extractor(mobile, True, 3)
    assert fpn.out_channels == 256 and len(fpn(torch.randn(1, 3, 64, 64))) == 3


def test_mobilenet_fpn_uses_stage_ends_and_freezes_by_stage():
    arch = Architecture("mobilenet_v2", [2, 3, 9, 5], width=0.5)
    body = models.build(arch)
    fpn = detection.fpn_extractor(body, trainable_layers=2)
    feats = fpn(torch.randn(1, 3, 64, 64))
    assert [f.shape[-1] for f in list(feats.values())[:4]] == [16, 8, 4, 2]
    trainable = {n.split(".")[0] for n, p in fpn.body.named_parameters() if p.requires_grad}
    c4_start = body.stage_ends[1] + 1
    assert min(map(int, trainable)) == c4_start  # C4 and C5 train, the rest is frozen


def test_inherit_copies_replicates_and_reports():
    source = torchvision.models.resnet50().state_dict()
    model = models.CRResNet50()
    report = inherit(model, source)
    assert isinstance(report, InheritReport) and not report.initialised
    state = model.state_dict()
    assert torch.equal(state["conv1.weight"], source["conv1.weight"])
    assert torch.equal(state["layer1.0.conv1.weight"], source["layer1.0.conv1.weight"])
    # layer4 has 7 blocks, the source 3: blocks 3..6 reuse source blocks 1, 2, 1, 2
    for j, k in [(3, 1), (4, 2), (5, 1), (6, 2)]:
        assert torch.equal(state[f"layer4.{j}.conv3.weight"], source[f"layer4.{k}.conv3.weight"])
        assert report.adapted[f"layer4.{j}.conv3.weight"] == f"replicated from layer4.{k}"
    assert report.adapted["layer2.1.conv2.weight"] == "dilation 2"
    assert "layer1.2.conv1.weight" in report.unused and "fc.weight" in report.unused
    assert str(report).startswith("InheritReport: ")


def test_inherit_mobilenet_and_mismatches(tmp_path):
    source = torchvision.models.mobilenet_v2().state_dict()
    model = models.build(Architecture("mobilenet_v2", [1, 4, 8, 6]), num_classes=1000)
    report = inherit(model, source)
    # C5's 320-channel group gets 2 blocks; the source has 1, so the new one stays at init
    assert any(k.startswith(f"features.{model.stage_ends[3] - 1}.") for k in report.initialised)
    assert torch.equal(model.state_dict()["classifier.1.weight"], source["classifier.1.weight"])
    narrow = models.build(Architecture.baseline("resnet18").replace(width=0.5))
    report = inherit(narrow, torchvision.models.resnet18().state_dict())
    assert not report.copied and "differs from" in report.initialised["conv1.weight"]
    # weights_backbone through a local state-dict file (no network in tests)
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": torchvision.models.resnet18().state_dict()}, path)
    named = models.ResNet18(weights_backbone=path)
    assert named.inherit_report.copied and not named.inherit_report.initialised
    with pytest.raises(FileNotFoundError, match="weights_backbone: expected 'torchvision'"):
        torchvision_state_dict("resnet18", tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="torchvision publishes no ImageNet weights for resnext101_32x4d"):
        torchvision_state_dict("resnext101_32x4d")
    with pytest.raises(TypeError, match="model: expected a model from crnas.models.build"):
        inherit(nn.Linear(2, 2), {})


@pytest.mark.parametrize("detector", detection.DETECTORS)
def test_detection_limit_caps_what_the_detector_returns(detector):
    torch.manual_seed(0)
    model = detection.build_detector(
        detector, TINY, num_classes=3, fpn_channels=32, min_size=160, max_size=160, **detection.detection_limit(detector, 7)
    ).eval()
    assert detection.detections_per_image(model) == 7
    if detector.startswith(("faster", "mask")):  # an untrained R-CNN scores every class ~1/3: keep all proposals
        model.roi_heads.score_thresh = 0.0
    else:
        model.score_thresh = 0.0
    with torch.no_grad():
        out = model([torch.rand(3, 160, 160)])
    assert len(out[0]["boxes"]) == 7
    with pytest.raises(ValueError, match="max_detections: expected an int >= 1, got 0"):
        detection.detection_limit(detector, 0)
    with pytest.raises(TypeError, match="expected a torchvision R-CNN, RetinaNet or FCOS detector, got Linear"):
        detection.detections_per_image(nn.Linear(1, 1))


def test_group_norm_and_norm_by_name():
    """GroupNorm keeps Wu & He's 32 groups where a layer has >= 64 channels and >= 2 channels per group in
    narrower ones; a normalisation is chosen by name, and an unknown name is one clear error."""
    from crnas.detection import group_norm, norm_by_name

    assert [group_norm(c).num_groups for c in (2048, 64, 32, 16, 6, 3)] == [32, 32, 16, 8, 2, 1]
    assert norm_by_name("batch") is nn.BatchNorm2d and norm_by_name("group") is group_norm
    with pytest.raises(ValueError, match="norm: expected one of batch, group, got 'layer'"):
        norm_by_name("layer")
    model = detection.build_detector("faster_rcnn_fpn", "resnet18", num_classes=3, norm_layer=group_norm, fpn_channels=16)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, nn.GroupNorm) for m in model.backbone.body.modules()) == 1 + 2 * 8 + 3  # stem, 2 per block, 3 downsamples
