"""ERF measurement: exact supports of conv stacks, dilation widens the ERF, levels, modes and inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from crnas.analysis import ERFResult, erf, erf_levels, erf_table, feature_maps, load_backbone
from crnas.detection import build_detector
from crnas.models import get_architecture
from torch import nn


def conv_stack(dilations: list[int], strides: list[int] | None = None, seed: int = 0) -> nn.Sequential:
    """3×3 convs (no nonlinearity, positive weights: no gradient can cancel) with the given dilations."""
    torch.manual_seed(seed)
    strides = strides or [1] * len(dilations)
    layers = [nn.Conv2d(3 if i == 0 else 4, 4, 3, stride=s, padding=d, dilation=d, bias=False) for i, (d, s) in enumerate(zip(dilations, strides))]
    for layer in layers:
        nn.init.uniform_(layer.weight, 0.5, 1.0)
    return nn.Sequential(*layers)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_stack_of_3x3_convs_has_the_analytic_support(k):
    result = erf(conv_stack([1] * k), "out", input_size=41, n=2)
    assert result.support == (2 * k + 1, 2 * k + 1)
    assert np.count_nonzero(result.map) == (2 * k + 1) ** 2
    rows, cols = np.nonzero(result.map)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (20 - k, 20 + k, 20 - k, 20 + k)  # centred on the centre unit


@pytest.mark.parametrize("k, d", [(1, 2), (2, 2), (2, 3), (3, 2)])
def test_dilated_stack_spans_2kd_plus_1_on_a_sparse_grid(k, d):
    result = erf(conv_stack([d] * k), "out", input_size=41, n=2)
    assert result.support == (2 * k * d + 1, 2 * k * d + 1)
    assert np.count_nonzero(result.map) == (2 * k + 1) ** 2  # only offsets that are multiples of d
    rows, cols = np.nonzero(result.map)
    assert set((rows - 20) % d) == {0} and set((cols - 20) % d) == {0}


def test_mixed_dilations_and_strides():
    # offsets {-1, 0, 1} + {-2, 0, 2}: every offset in [-3, 3]
    mixed = erf(conv_stack([1, 2]), "out", input_size=41, n=1)
    assert mixed.support == (7, 7) and np.count_nonzero(mixed.map) == 49
    # 3×3 stride 2, then 3×3 at stride 2: 3 + 2·2 = 7; the centre unit (10, 10) of the 21×21 map sits at 20
    strided = erf(conv_stack([1, 1], strides=[2, 1]), "out", input_size=41, n=1)
    assert strided.stride == 2 and strided.unit == (10, 10) and strided.support == (7, 7)
    assert np.nonzero(strided.map)[0].min() == 20 - 3


def test_larger_dilation_gives_a_larger_radius_on_a_toy_model():
    plain, dilated = (erf(conv_stack([d] * 4), "out", input_size=65, n=2) for d in (1, 2))
    assert dilated.r50 > 1.5 * plain.r50 and dilated.r90 > 1.5 * plain.r90 and dilated.rms_radius > 1.5 * plain.rms_radius


def test_cr_resnet50_has_a_larger_erf_than_scr_resnet50_with_random_weights():
    """Same allocation [1, 3, 5, 7]; CR adds dilations 2 and 3 in C3..C5 (random weights, seeded)."""
    radii = {}
    for name in ("scr_resnet50", "cr_resnet50"):
        model = load_backbone(get_architecture(name).replace(width=0.125), fpn_channels=16, seed=0)
        radii[name] = erf_levels(model, ["C5", "P5"], input_size=384, n=2)  # 256 would clip the ERFs
    for level in ("C5", "P5"):  # ratios 1.3-1.7 over seeds 0-2
        assert radii["cr_resnet50"][level].r50 > 1.2 * radii["scr_resnet50"][level].r50
        assert radii["cr_resnet50"][level].area50 > radii["scr_resnet50"][level].area50


def test_resnet_c2_support_within_its_theoretical_receptive_field():
    # stem 7×7/2 (7) → max-pool 3×3/2 (11) → three 3×3 convs at stride 4 (+8 each) = 35
    backbone = load_backbone(get_architecture("resnet50").replace(width=0.125), fpn_channels=16)
    result = erf(backbone, "C2", input_size=128, n=2)
    assert result.stride == 4 and result.support[0] <= 35 and result.support[1] <= 35


def test_levels_of_a_detector_backbone_and_bare_backbone():
    arch = get_architecture("resnet50").replace(width=0.125)
    backbone = load_backbone(arch, fpn_channels=16)
    with torch.no_grad():
        maps = feature_maps(backbone, torch.zeros(1, 3, 64, 64))
    assert {k: s for k, (_, s) in maps.items()} == {
        "C2": 4, "C3": 8, "C4": 16, "C5": 32, "P2": 4, "P3": 8, "P4": 16, "P5": 32, "P6": 64,
    }
    with torch.no_grad():
        bare = feature_maps(backbone.body, torch.zeros(1, 3, 64, 64))  # IntermediateLayerGetter: a mapping
    assert sorted(bare) == ["0", "1", "2", "3"]
    from crnas.models import build

    with torch.no_grad():
        assert sorted(feature_maps(build(arch), torch.zeros(1, 3, 64, 64))) == ["C2", "C3", "C4", "C5"]


def test_detector_matches_its_backbone_and_restores_its_state():
    torch.manual_seed(0)
    detector = build_detector("faster_rcnn_fpn", get_architecture("cr_resnet50").replace(width=0.125), num_classes=3, fpn_channels=16)
    detector.train()
    flags = [p.requires_grad for p in detector.parameters()]
    whole = erf(detector, "P4", input_size=96, n=2)
    assert detector.training and [p.requires_grad for p in detector.parameters()] == flags
    assert all(p.grad is None for p in detector.parameters())
    part = erf(detector.backbone, "P4", input_size=96, n=2)
    np.testing.assert_allclose(whole.map, part.map)
    assert whole.map.shape == (96, 96) and whole.map.sum() == pytest.approx(1.0)
    assert whole.r50 <= whole.r90 and whole.area50 <= whole.area90 and 0 < whole.anchor_mass <= 1
    assert whole.anchor == 8 * 16 and whole.n == 2 and whole.inputs == "noise"
    json.dumps(whole.as_dict())


def test_image_inputs_are_resized_and_averaged():
    from crnas.data import SyntheticDetection

    model = conv_stack([1, 1])
    data = SyntheticDetection(3, image_size=(48, 64))
    from_dataset = erf(model, "out", input_size=(40, 40), images=data, n=2)
    from_tensor = erf(model, "out", input_size=40, images=torch.stack([data.load_image(i) for i in range(2)]), n=5)
    assert from_dataset.inputs == "images" and from_dataset.n == 2 and from_tensor.n == 2
    np.testing.assert_allclose(from_dataset.map, from_tensor.map, rtol=1e-6)


def test_batching_does_not_change_the_result():
    model = conv_stack([1, 2, 1])
    np.testing.assert_allclose(erf(model, "out", input_size=33, n=5, batch_size=2).map, erf(model, "out", input_size=33, n=5).map, rtol=1e-6)


def test_errors_name_the_argument():
    model = conv_stack([1])
    with pytest.raises(ValueError, match=r"levels: expected names among \['out'\], got 'P3'"):
        erf(model, "P3", input_size=16, n=1)
    with pytest.raises(ValueError, match="input_size: expected a positive int or"):
        erf(model, "out", input_size=(0, 16), n=1)
    with pytest.raises(ValueError, match="n: expected a positive int, got 0"):
        erf(model, "out", input_size=16, n=0)
    with pytest.raises(ValueError, match=r"images: expected Tensor\[N, 3, H, W\]"):
        erf(model, "out", input_size=16, images=torch.zeros(2, 1, 8, 8))
    with pytest.raises(TypeError, match="levels: expected a sequence of level names"):
        erf_levels(model, "out", input_size=16)
    with pytest.raises(ValueError, match="erf_map: expected a non-negative"):
        ERFResult.from_map(np.zeros((4, 4)), "out", 1, (2, 2), 1, "noise")


def test_summary_numbers_of_a_known_map():
    m = np.zeros((21, 21))
    m[10, 10] = 0.5
    m[10, 14] = m[10, 6] = 0.25  # mass 1/2 at the centre, 1/4 each at distance 4
    r = ERFResult.from_map(m, "out", 1, (10, 10), 1, "noise")
    assert r.centre == (10.0, 10.0) and r.r50 == 0.0 and r.r90 == 4.0 and r.rms_radius == pytest.approx(np.sqrt(8))
    assert (r.area50, r.area90, r.support, r.anchor, r.anchor_mass) == (1, 3, (1, 9), 8, 1.0)


def test_erf_table_rows():
    m = np.ones((9, 9))
    r = ERFResult.from_map(m, "P3", 8, (1, 1), 1, "noise")
    table = erf_table({"a": [r], "b": {"P3": r}})
    assert list(table["model"]) == ["a", "b"] and list(table.columns[:4]) == ["model", "level", "stride", "anchor"]


def test_group_norm_checkpoint_loads_into_group_norm():
    """A --norm group detector's weights (no running statistics) load into a GroupNorm backbone that
    computes what the detector's backbone computes."""
    from crnas.detection import group_norm

    arch = get_architecture("resnet18").replace(width=0.125)
    torch.manual_seed(0)
    detector = build_detector("faster_rcnn_fpn", arch, num_classes=3, fpn_channels=16, norm_layer=group_norm).eval()
    backbone = load_backbone(arch, detector.state_dict()).eval()
    assert any(isinstance(m, torch.nn.GroupNorm) for m in backbone.modules())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = backbone(x), detector.backbone(x)
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key])
