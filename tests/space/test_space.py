"""Stage spaces, uniform sampling and dilation paths."""

from __future__ import annotations

import math
import random
from collections import Counter

import crnas
import numpy as np
import pytest
import scipy.optimize
import scipy.stats
import torch
from crnas import Architecture, StageSpace, flops
from crnas.sampling import sample_paths
from hypothesis import given, settings
from hypothesis import strategies as st

RESNET_CHOICES = [list(range(1, 11)), list(range(1, 11)), [2, 3, 5, 6, 9, 11, 14, 17, 20, 23], [2, 3, 4, 6, 7, 9, 11, 13, 15, 17]]


@pytest.mark.parametrize("family, n, count", [("resnet18", 8, 9), ("resnet50", 16, 153), ("resnet101", 33, 374), ("resnext50_32x4d", 16, 153)])
def test_paper_spaces_enumerate_exactly(family, n, count):
    space = StageSpace.paper(family)
    assert space.budget == {"type": "blocks", "total": n}
    allocations = space.allocations()
    assert len(space) == len(allocations) == count
    brute = [
        [a, b, c, d]
        for a in RESNET_CHOICES[0] for b in RESNET_CHOICES[1] for c in RESNET_CHOICES[2] for d in RESNET_CHOICES[3]
        if a + b + c + d == n
    ]
    assert allocations == brute
    assert Architecture.baseline(family).blocks in space
    assert space.joint_size() == count * 3**n


def test_mobilenet_space_is_a_macs_tolerance():
    space = StageSpace.paper("mobilenet_v2")
    budget = space.budget
    assert budget["type"] == "macs" and budget["tolerance"] == 0.01 and tuple(budget["input_size"]) == (800, 1088)
    assert [2, 3, 7, 4] in space and len(space) == 49
    macs = flops.count_many([space.architecture(b) for b in space.allocations()], (800, 1088), classifier=False)
    assert all(abs(int(m) / budget["target"] - 1) <= 0.01 for m in macs)
    assert space.joint_size() == sum(3 ** sum(b) for b in space.allocations())


def test_custom_spaces():
    space = StageSpace("resnet50", [[1, 2], [1, 2], [2, 3], [2, 3]], budget=8)
    assert space.allocations() == [[1, 1, 3, 3], [1, 2, 2, 3], [1, 2, 3, 2], [2, 1, 2, 3], [2, 1, 3, 2], [2, 2, 2, 2]]
    assert len(StageSpace("resnet50", RESNET_CHOICES, flops_tolerance=0.0)) == 153  # equal MACs == equal block count
    assert repr(StageSpace.paper("resnet50")) == "StageSpace(resnet50, budget=16 blocks, 153 allocations)"


@pytest.mark.parametrize("family", ["resnet50", "resnet101", "mobilenet_v2"])
def test_split_is_an_even_partition_by_one_stage(family):
    """Few-shot parts: contiguous depth ranges of one stage, every allocation in exactly one part (the
    space's own allocations with that stage's depth in range), the largest part as small as any
    contiguous cut allows (checked against every cut for two parts)."""
    space = StageSpace.paper(family)
    for stage in range(4):
        depths = sorted({a[stage] for a in space.allocations()})
        counts = [sum(a[stage] == d for a in space.allocations()) for d in depths]
        parts = space.split(stage, 2)
        assert [d for p in parts for d in p.choices[stage]] == depths
        assert all(p.budget == space.budget and p.width == space.width for p in parts)
        assert sorted(b for p in parts for b in p.allocations()) == space.allocations()
        assert all(p.allocations() == [a for a in space.allocations() if a[stage] in p.choices[stage]] for p in parts)
        best = min(max(sum(counts[:i]), sum(counts[i:])) for i in range(1, len(counts)))
        assert max(len(p) for p in parts) == best


def test_sampling_is_uniform():
    """Chi-square over 20,000 draws on the N=16 space; critical value at p = 0.001."""
    space = StageSpace.paper("resnet50")
    draws = space.sample(20_000, seed=123)
    counts = Counter(map(tuple, draws))
    assert set(counts) <= set(map(tuple, space.allocations()))
    k = len(space)
    expected = len(draws) / k
    chi2 = sum((counts.get(tuple(a), 0) - expected) ** 2 / expected for a in space.allocations())
    dof = k - 1
    z = 3.090  # standard normal quantile at 0.999; Wilson-Hilferty approximation of chi2(dof)
    critical = dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3
    assert chi2 < critical
    assert len(counts) == k  # every allocation was drawn


def test_balanced_sampling_maximises_the_stage_depth_entropy():
    """Balanced draws follow StageSpace.weights("balanced") (chi-square, scipy), whose per-stage depth
    distributions have a larger summed entropy than uniform's and than any feasible nudge of it (SLSQP)."""
    space = StageSpace.paper("resnet50")
    allocations = np.array(space.allocations())
    weights = np.array(space.weights("balanced"))

    def entropy(w: np.ndarray) -> float:
        return sum(scipy.stats.entropy([w[allocations[:, s] == d].sum() for d in np.unique(allocations[:, s])]) for s in range(4))

    uniform = np.array(space.weights())
    assert uniform == pytest.approx(np.full(len(space), 1 / len(space)))
    assert entropy(weights) > entropy(uniform) + 0.03
    best = scipy.optimize.minimize(
        lambda w: -entropy(np.clip(w, 1e-15, None)), uniform, method="SLSQP", bounds=[(0, 1)] * len(space),
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}], options={"maxiter": 500, "ftol": 1e-12},
    )
    assert entropy(weights) >= -best.fun - 1e-6  # an independent optimiser finds nothing better
    draws = space.sample(20_000, seed=9, sampling="balanced")
    index = {tuple(a): i for i, a in enumerate(space.allocations())}
    counts = np.bincount([index[tuple(d)] for d in draws], minlength=len(space))
    assert scipy.stats.chisquare(counts, 20_000 * weights).pvalue > 0.001
    assert space.sample(40, seed=2) == space.sample(40, seed=2, sampling="uniform")
    with pytest.raises(ValueError, match=r'sampling: expected one of uniform, balanced, independent, got "fair"'):
        space.sample(1, sampling="fair")


@pytest.mark.parametrize("family", ["resnet50", "mobilenet_v2"])
def test_independent_sampling_draws_each_stage_depth_uniformly(family):
    """Independent draws: each stage's depth uniform over the depths feasible allocations use (chi-square,
    scipy), the stages independent of each other (contingency test on C2 x C3), the budget not kept."""
    space = StageSpace.paper(family)
    allocations = np.array(space.allocations())
    draws = np.array(space.sample(30_000, seed=4, sampling="independent"))
    for s in range(4):
        depths = np.unique(allocations[:, s])
        assert set(np.unique(draws[:, s])) == set(depths)
        counts = [(draws[:, s] == d).sum() for d in depths]
        assert scipy.stats.chisquare(counts).pvalue > 0.001
    table = np.array([[((draws[:, 0] == a) & (draws[:, 1] == b)).sum() for b in np.unique(allocations[:, 1])] for a in np.unique(allocations[:, 0])])
    assert scipy.stats.chi2_contingency(table).pvalue > 0.001
    feasible = np.mean([d in space for d in draws.tolist()])
    assert 0 < feasible < 0.5
    assert feasible == pytest.approx(sum(space.weights("independent")), abs=0.01)
    assert space.sample(20, seed=4, sampling="independent") == draws[:20].tolist()


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), k=st.integers(0, 50), family=st.sampled_from(["resnet18", "resnet101", "mobilenet_v2"]))
def test_samples_are_feasible_and_reproducible(seed, k, family):
    space = StageSpace.paper(family)
    draws = space.sample(k, seed=seed)
    assert len(draws) == k and all(b in space for b in draws)
    assert draws == space.sample(k, seed=seed)
    archs = space.sample_architectures(min(k, 5), seed=seed)
    assert all(a.blocks in space and a.family == family for a in archs)


def test_sample_architectures_covers_dilations():
    archs = StageSpace.paper("resnet18").sample_architectures(300, seed=0)
    counts = Counter(d for a in archs for d in a.dilations)
    assert set(counts) == {1, 2, 3} and min(counts.values()) > 0.28 * sum(counts.values())


def test_sample_paths():
    paths = sample_paths(6, 4, seed=3)
    assert paths.shape == (6, 4, 3) and paths.dtype == torch.float32
    assert torch.equal(paths.sum(-1), torch.ones(6, 4))
    assert torch.equal(paths, crnas.sample_paths(6, 4, seed=3))
    assert not torch.equal(paths, sample_paths(6, 4, seed=4))
    logits = torch.tensor([[0.0, 0.0, 50.0]]).repeat(6, 1)
    assert torch.equal(sample_paths(6, 4, seed=1, logits=logits).argmax(-1), torch.full((6, 4), 2))
    per_sample = torch.zeros(2, 3, 3)
    per_sample[:, 1, 0] = 50.0
    picked = sample_paths(2, 3, seed=0, logits=per_sample).argmax(-1)
    assert torch.equal(picked[:, 1], torch.zeros(2, dtype=torch.long))
    # frequencies follow softmax(logits)
    p = torch.tensor([0.2, 0.3, 0.5])
    freq = sample_paths(1, 20_000, seed=9, logits=p.log()[None]).mean((0, 1))
    assert torch.allclose(freq, p, atol=0.015)
    assert sample_paths(0, 5).shape == (0, 5, 3)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: StageSpace("resnet50", RESNET_CHOICES), ValueError, r"budget: expected exactly one of a block count"),
        (lambda: StageSpace("resnet50", RESNET_CHOICES, budget=16, flops_tolerance=0.01), ValueError, "budget: expected exactly one"),
        (lambda: StageSpace("resnet50", RESNET_CHOICES[:3], budget=16), ValueError, r"choices: expected 4 choice sets"),
        (lambda: StageSpace("resnet50", [[], [1], [1], [1]], budget=4), ValueError, r"choices\[0\]: expected a non-empty set"),
        (lambda: StageSpace("resnet50", [[0], [1], [1], [1]], budget=4), ValueError, r"choices\[0\]: expected block counts in \[1, 1000\]"),
        (lambda: StageSpace("resnet50", RESNET_CHOICES, flops_tolerance=-0.1), ValueError, r"flops_tolerance: expected a relative tolerance"),
        (lambda: StageSpace("resnet50", RESNET_CHOICES, budget=3).sample(1), ValueError, r"space: expected at least one feasible allocation"),
        (lambda: StageSpace.paper("resnet50").split(4, 2), ValueError, r"split_stage: expected a stage index in 0..=3 \(C2..C5\), got 4"),
        (lambda: StageSpace.paper("resnet50").split(2, 7), ValueError, r"split_groups: expected between 1 and the 6 feasible depths of stage C4"),
        (lambda: StageSpace.paper("resnet50").split(-1, 2), OverflowError, r"can't convert negative int to unsigned"),
        (lambda: sample_paths(2, 2, logits=torch.zeros(3, 3)), ValueError, r"logits: expected shape \[2, 3\] or \[2, 2, 3\]"),
        (lambda: sample_paths(2, 2, logits=torch.zeros(2, 3, dtype=torch.long)), TypeError, r"logits: expected a floating-point tensor"),
        (lambda: sample_paths(1, 1, logits=torch.tensor([[float("nan"), 0.0, 0.0]])), ValueError, r"logits: expected finite values"),
        (lambda: sample_paths(-1, 2), ValueError, r"num_blocks: expected an int >= 0, got -1"),
        (lambda: sample_paths(1, 2, seed=-5), ValueError, r"seed: expected an int in \[0, 2\*\*64\)"),
        (lambda: sample_paths(1, 2, device="tpu"), RuntimeError, r"tpu"),
    ],
)
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_fuzzed_bad_inputs_raise_python_exceptions():
    """1,200 generated bad inputs to Architecture, the spaces, the sampler and the accountant."""
    rng = random.Random(0)
    junk = [None, "x", 1.5, -1, 0, 10**30, [], [[]], {}, float("nan"), float("inf"), True, object(), [1, 2], [1] * 5, "resnet50"]
    families = ["resnet50", "mobilenet_v2", "resnet", "", "RESNET50", 50]
    calls = [
        lambda: Architecture(rng.choice(families), rng.choice(junk + [[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, -3]])),
        lambda: Architecture("resnet18", [1, 1, 1, 1], rng.choice(junk[1:] + [[4, 1, 1, 1], [0, 1, 1, 1]]), rng.choice([1.0, 0.0, -1.0, 1e9])),
        lambda: Architecture.from_json(
            rng.choice(['{"family":"resnet50"}', "[]", "null", "", '{"blocks":[1,1,1,1]}', '{"family":"x","blocks":[1,1,1,1]}'])
        ),
        lambda: Architecture.paper(rng.choice(["", "cr_resnet18", "CR_RESNET50", "resnet50"])),
        lambda: Architecture.baseline(rng.choice(["vgg", "", "resnet", "ResNet50"])),
        lambda: StageSpace(rng.choice(families), rng.choice(junk + [[[1]] * 3, [[0]] * 4, [[1], [], [1], [1]]]), budget=rng.choice([None, 4, -1])),
        lambda: StageSpace.paper(rng.choice(["", "vgg16", "resnet"])),
        lambda: StageSpace.paper("resnet18").sample(rng.choice([-1, 1.5, "a", None])),
        lambda: StageSpace.paper("resnet18").architecture(rng.choice([[1, 1, 1], [0, 1, 1, 1], [-1, 1, 1, 1], "abcd"])),
        lambda: flops.count(Architecture.baseline("resnet18"), rng.choice([0, -3, (1,), (1, 2, 3), "a", (0, 5), (5, -5), 1.5])),
        lambda: flops.count(Architecture.baseline("resnet18"), 64, rng.choice(["", "rcnn", "FASTER_RCNN_FPN", 3])),
        lambda: flops.count(Architecture.baseline("resnet18"), 64, "faster_rcnn_fpn", rois=rng.choice([-1, -100])),
        lambda: flops.count_many(rng.choice([[1, 2], ["a"], [None], [Architecture.baseline("resnet18"), 3]]), 64),
        lambda: flops.count(rng.choice([None, "resnet50", 3, [1, 2, 3, 4]]), 64),
        lambda: sample_paths(rng.choice([-2, 1.5, "3", None]), 2),
        lambda: sample_paths(2, 2, rng.choice([0, -1, 2.0])),
        lambda: sample_paths(2, 2, logits=rng.choice([torch.zeros(1), torch.zeros(2, 2), [[0.0] * 3] * 2, torch.zeros(2, 3, 3)])),
    ]
    raised = 0
    for _ in range(1200):
        call = rng.choice(calls)
        with pytest.raises((ValueError, TypeError, OverflowError, RuntimeError)):
            call()
        raised += 1
    assert raised == 1200
