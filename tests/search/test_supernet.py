"""Supernets: elastic depth, searchable convolutions, sub-network extraction, scoring helpers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from crnas import StageSpace
from crnas.search.scoring import choices_to_paths, recalibrate_bn
from crnas.search.supernet import SearchableConv2d, build_supernet_detector, extract_detector, supernet_of

SPACES = {
    "resnet50": lambda: StageSpace("resnet50", StageSpace.paper("resnet50").choices, budget=16, width=0.125),
    "mobilenet_v2": lambda: StageSpace("mobilenet_v2", StageSpace.paper("mobilenet_v2").choices, flops_tolerance=0.01, width=0.25),
}


def small_detector(space, detector="faster_rcnn_fpn", norm_layer=None, normalize_outputs=False):
    torch.manual_seed(0)
    return build_supernet_detector(
        detector, space, num_classes=3, min_size=64, max_size=64, fpn_channels=32, representation_size=32, norm_layer=norm_layer,
        normalize_outputs=normalize_outputs,
    )


@pytest.mark.parametrize(
    ("family", "norm", "normalized"),
    [(family, "batch", False) for family in sorted(SPACES)] + [("resnet50", "group", False)] + [(family, "batch", True) for family in sorted(SPACES)],
)
def test_subnetworks_are_final_models(family, norm, normalized):
    """Every allocation (with any dilations) of the supernet computes exactly what the final model
    built from the architecture computes with the extracted weights (with either normalisation, and
    with normalised outputs' running scales folded into the FPN)."""
    from crnas.detection import norm_by_name

    space = SPACES[family]()
    model = small_detector(space, norm_layer=norm_by_name(norm), normalize_outputs=normalized).eval()
    supernet = supernet_of(model)
    with torch.no_grad():  # away from the 1 they start at, so that folding them is tested
        supernet.output_rms.uniform_(0.5, 3.0)
    images = [torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))]
    for blocks in [space.allocations()[0], space.allocations()[-1], space.allocations()[len(space) // 2]]:
        arch = space.architecture(blocks, [(1, 2, 3)[i % 3] for i in range(sum(blocks))])
        supernet.set_allocation(blocks)
        supernet.set_dilations(arch.dilations)
        assert supernet.architecture(arch.dilations) == arch
        final = extract_detector(model, arch, "faster_rcnn_fpn", num_classes=3, min_size=64, max_size=64, representation_size=32).eval()
        assert {type(m) for m in final.backbone.body.modules()} >= {type(norm_by_name(norm)(8))}
        with torch.no_grad():
            ours, theirs = model.backbone(images[0][None]), final.backbone(images[0][None])
            boxes = model(images)[0]["boxes"], final(images)[0]["boxes"]
        tolerance = {"atol": 1e-4, "rtol": 1e-4} if normalized else {}  # folding reorders the float sums
        for key in ours:
            torch.testing.assert_close(ours[key], theirs[key], **tolerance)
        torch.testing.assert_close(*boxes, **tolerance)


def test_allocation_validation_and_depths():
    space = SPACES["resnet50"]()
    supernet = supernet_of(small_detector(space))
    supernet.set_allocation([1, 3, 5, 7])
    assert [len(getattr(supernet, f"layer{i}").active) for i in range(1, 5)] == [1, 3, 5, 7]
    assert len(supernet.active_convs) == 16 and all(c.path == 0 for c in supernet.active_convs)
    assert [len(getattr(supernet, f"layer{i}")) for i in range(1, 5)] == [10, 10, 23, 17]
    with pytest.raises(ValueError, match=r"blocks: expected an allocation within the supernet's depths, got \[11, 1, 2, 2\]"):
        supernet.set_allocation([11, 1, 2, 2])
    with pytest.raises(ValueError, match=r"paths: expected 16 \(one per active block\), got 3"):
        supernet.set_paths([0, 1, 2])


def test_normalized_outputs_divide_by_the_running_scale_of_their_depth():
    """With normalised outputs, training steps keep every returned stage's root mean square per depth
    (the mean of the first ten batches, then momentum 0.1) and divide by it; eval mode and train-mode
    forwards without gradients (BatchNorm recalibration before scoring) divide by the kept value without
    changing it; the next stage still gets the raw output."""
    space = SPACES["resnet50"]()
    supernet = small_detector(space, normalize_outputs=True).backbone.body
    plain = small_detector(space).backbone.body
    assert supernet.output_rms.shape == (4, 24) and supernet_of(small_detector(space)).output_rms.numel() == 0  # off by default
    gen = torch.Generator().manual_seed(1)
    batches = [torch.rand(2, 3, 64, 64, generator=gen) for _ in range(12)]
    supernet.set_allocation([1, 3, 5, 7])
    plain.set_allocation([1, 3, 5, 7])
    expected = torch.ones(4)
    for i, x in enumerate(batches, start=1):
        with torch.no_grad():
            raw = plain.train()(x)
        rms = torch.stack([raw[k].pow(2).mean().sqrt() for k in raw])
        expected += max(0.1, 1 / i) * (rms - expected)
        ours = supernet.train()(x)
        for j, k in enumerate(raw):
            torch.testing.assert_close(ours[k].detach(), raw[k] / expected[j])
    with torch.no_grad():  # BatchNorm statistics move in both, the scales do not
        supernet.train()(batches[0]), plain.train()(batches[0])
    torch.testing.assert_close(supernet.output_rms[[0, 1, 2, 3], [1, 3, 5, 7]], expected)
    assert supernet.output_count[[0, 1, 2, 3], [1, 3, 5, 7]].tolist() == [12] * 4 and int(supernet.output_count.sum()) == 48
    assert [float(s) for s in supernet.output_scales()] == expected.tolist()
    assert float(supernet.output_scales([2, 3, 5, 6])[0]) == 1.0  # a depth not trained yet passes unchanged
    with torch.no_grad():
        ours, raw = supernet.eval()(batches[0]), plain.eval()(batches[0])
    for j, k in enumerate(raw):
        torch.testing.assert_close(ours[k], raw[k] / expected[j])
    assert int(supernet.output_count.sum()) == 48


def test_per_sample_paths_equal_separate_convolutions():
    conv = SearchableConv2d(4, 6, stride=2).double()
    x = torch.randn(3, 4, 9, 9, dtype=torch.float64)
    choices = torch.tensor([[2], [0], [1]])
    (path,) = choices_to_paths(choices)
    assert torch.equal(path, torch.tensor([2, 0, 1]))  # one dilation index per image
    conv.path = path
    grouped = conv(x)
    for i, d in enumerate((3, 1, 2)):
        conv.path = (1, 2, 3).index(d)
        torch.testing.assert_close(grouped[i : i + 1], conv(x[i : i + 1]))
        torch.testing.assert_close(conv(x[i : i + 1]), F.conv2d(x[i : i + 1], conv.weight, None, 2, d, d))
    conv.path = F.one_hot(path, 3).double()  # the same paths as a float mix: the fused op
    torch.testing.assert_close(conv(x), grouped)
    assert choices_to_paths(torch.tensor([[1, 0], [1, 2]]))[0] == 1  # agreeing images: a plain conv


def test_recalibrated_statistics_are_batch_averages():
    space = SPACES["resnet50"]()
    model = small_detector(space)
    supernet = supernet_of(model)
    supernet.set_allocation([1, 3, 5, 7])
    batches = [[torch.rand(3, 64, 64) for _ in range(2)] for _ in range(3)]
    means = []

    def grab(module, inputs, output):
        means.append(inputs[0].mean((0, 2, 3)))

    handle = supernet.bn1.register_forward_hook(grab)
    model.eval()
    recalibrate_bn(model, batches)
    handle.remove()
    torch.testing.assert_close(supernet.bn1.running_mean, torch.stack(means).mean(0))
    assert supernet.bn1.momentum == 0.1 and not model.training  # momentum and mode restored


def test_joint_scoring_of_one_candidate_is_one_by_one_scoring():
    """With a single candidate the joint pass is exactly the one-by-one evaluation."""
    from crnas.data import SyntheticDetection, split
    from crnas.search import Scorer

    space = SPACES["resnet50"]()
    model = small_detector(space)
    supernet_of(model).set_allocation([1, 3, 5, 7])
    archtrain, archval = split(SyntheticDetection(12, image_size=(64, 64), seed=3), 0.34, 0)
    scorer = Scorer(model, archtrain, archval, batch_size=2, recal_batches=2, seed=5)
    prefix = [[2, 3, 1]]
    assert scorer.score_candidates(prefix, 2, joint=True) == scorer.score_candidates(prefix, 2, joint=False)
    several = [[1, 1, 1], [2, 3, 1], [3, 2, 2]]
    joint, single = scorer.score_candidates(several, 2, joint=True), scorer.score_candidates(several, 2, joint=False)
    assert len(joint) == len(single) == 3 and all(0 <= m["AP"] <= 1 for m in joint)


@pytest.mark.parametrize("family", sorted(SPACES))
def test_inherited_supernet_gives_each_subnetwork_what_inherit_gives_its_model(family, tmp_path):
    """SuperNet.inherit (a state-dict file of the family's network): every allocation's weights equal
    those crnas.models.weights.inherit gives the plain model of that allocation (where it gives any: a
    block with no source counterpart keeps its initialisation, which differs between the two)."""
    from crnas.arch import get_architecture
    from crnas.models import build
    from crnas.models.weights import inherit

    space = SPACES[family]()
    torch.manual_seed(5)
    source = build(get_architecture(family, width=space.width), num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "backbone.pt")
    supernet = supernet_of(small_detector(space))
    report = supernet.inherit(tmp_path / "backbone.pt")
    assert report.copied and report.adapted  # the first blocks copied, the repeated ones adapted
    for blocks in [space.allocations()[0], space.allocations()[-1]]:
        arch = space.architecture(blocks)
        plain = build(arch)
        plain_report = inherit(plain, source.state_dict())
        mine, theirs = supernet.subnet_state_dict(arch), plain.state_dict()
        taken = [k for k in [*plain_report.copied, *plain_report.adapted] if k in mine]
        missing = {k.split(".")[0] for k in [*plain_report.copied, *plain_report.adapted] if k not in mine}
        assert missing <= {"fc", "classifier"}  # the supernet has every inherited tensor but the classifier's
        for key in taken:
            torch.testing.assert_close(mine[key], theirs[key], rtol=0, atol=0, msg=key)
    with pytest.raises(FileNotFoundError, match="weights_backbone: expected 'torchvision', a WeightsEnum or a state-dict file"):
        supernet.inherit(tmp_path / "missing.pt")


def test_independent_stage_sampling_trains_allocations_outside_the_budget():
    """StageSampler("independent") sets each step's draw of StageSpace.sample (seeded by the step), which
    may break the budget; such a sub-network trains (a finite loss, gradients on its deepest blocks)."""
    from crnas.data.seeding import derive_seed
    from crnas.search.callbacks import STAGE_SAMPLE, StageSampler

    space = SPACES["resnet50"]()
    model = small_detector(space).train()
    supernet = supernet_of(model)
    sampler = StageSampler(space, seed=3, sampling="independent")
    drawn = []
    for step in range(40):
        sampler.on_step_start(step, [], [], model)
        drawn.append(supernet.allocation)
        assert [supernet.allocation] == space.sample(1, seed=derive_seed(3, STAGE_SAMPLE, step), sampling="independent")
    assert sum(blocks not in space for blocks in drawn) > 30  # 3.6% of the draws keep the budget
    deepest = max(drawn, key=sum)
    supernet.set_allocation(deepest)
    images = [torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(2))]
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 40.0, 40.0]]), "labels": torch.tensor([1])}]
    loss = sum(model(images, targets).values())
    loss.backward()
    assert torch.isfinite(loss)
    last = getattr(supernet, f"layer{deepest.index(max(deepest)) + 1}")[max(deepest) - 1]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in last.parameters())


def test_the_sandwich_trains_the_deepest_the_shallowest_and_the_draw_with_distillation():
    """StageSampler(sandwich=True): three passes per step, the deepest and the shallowest feasible depth of
    every stage (computed here from the allocations), then the step's draw; with distill, the second and
    third passes' losses gain distill x the mean over FPN levels of the squared error to the deepest's
    features relative to their square."""
    from crnas.data.seeding import derive_seed
    from crnas.search.callbacks import STAGE_SAMPLE, StageSampler

    space = SPACES["resnet50"]()
    model = small_detector(space).train()
    supernet = supernet_of(model)
    allocations = space.allocations()
    deepest = [max(a[s] for a in allocations) for s in range(4)]
    shallowest = [min(a[s] for a in allocations) for s in range(4)]
    assert (deepest, shallowest) == ([10, 10, 11, 11], [1, 1, 2, 2])
    sampler = StageSampler(space, seed=5, sampling="balanced", sandwich=True, distill=0.5)
    assert sampler.passes_per_step == 3
    images = [torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(2))]
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 40.0, 40.0]]), "labels": torch.tensor([1])}]
    sampler.on_step_start(7, images, targets, model)
    (drawn,) = space.sample(1, seed=derive_seed(5, STAGE_SAMPLE, 7), sampling="balanced")
    features = {}
    for index, blocks in enumerate([deepest, shallowest, drawn]):
        sampler.on_pass_start(7, index, model)
        assert supernet.allocation == blocks
        losses = model(images, targets)
        assert ("loss_distill" in losses) == (index > 0)
        with torch.no_grad():
            images_t, _ = model.transform(images, targets)
            features[index] = model.backbone(images_t.tensors)
        if index:
            expected = 0.5 * torch.stack([((features[index][k] - features[0][k]) ** 2).sum() / (features[0][k] ** 2).sum()
                                          for k in features[0]]).mean()
            torch.testing.assert_close(losses["loss_distill"].detach(), expected)
            assert losses["loss_distill"].requires_grad
    sampler.on_step_end(7, {})
    assert "loss_distill" not in model(images, targets)  # outside a sandwich step: the detector's own losses
    plain = StageSampler(space, seed=5)
    assert plain.passes_per_step == 1
    with pytest.raises(ValueError, match=r"distill: expected a finite weight >= 0 \(> 0 only with sandwich=True\), got 0.5"):
        StageSampler(space, seed=5, distill=0.5)
