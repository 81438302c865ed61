"""Figures: files written, PNG pixel size = figsize × dpi, no pyplot or backend switch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from crnas.analysis import (
    ERFResult,
    plot_allocation,
    plot_dilation_search,
    plot_erf,
    plot_macs,
    plot_search,
    plot_stage_search,
)
from PIL import Image


def check_png(fig, path, dpi=100):
    assert path.is_file() and path.stat().st_size > 1000
    width, height = fig.get_size_inches()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (round(width * dpi), round(height * dpi))
        assert len(set(np.asarray(image.convert("L")).ravel().tolist())) > 2  # not blank


def gaussian_erf(level: str, stride: int, sigma: float, size: int = 64) -> ERFResult:
    ys, xs = np.indices((size, size))
    m = np.exp(-((ys - size / 2) ** 2 + (xs - size / 2) ** 2) / (2 * sigma**2))
    return ERFResult.from_map(m, level, stride, (size // 2 // stride,) * 2, 1, "noise")


def test_erf_grid(tmp_path):
    results = {
        "resnet50": [gaussian_erf("P3", 8, 6), gaussian_erf("P4", 16, 9)],
        "cr_resnet50": {"P3": gaussian_erf("P3", 8, 7), "P4": gaussian_erf("P4", 16, 12), "P5": gaussian_erf("P5", 32, 20)},
    }
    fig = plot_erf(results, gamma=0.5, path=tmp_path / "erf.png")
    check_png(fig, tmp_path / "erf.png")
    assert fig.get_size_inches()[0] == pytest.approx(2.6 * 3 + 0.6)  # columns = union of the levels
    assert [ax.get_title() for ax in fig.axes[:3]] == ["P3 (stride 8)", "P4 (stride 16)", ""]  # P5 missing in row 1
    fig = plot_erf(gaussian_erf("P3", 8, 6), dpi=50, path=tmp_path / "one.png")
    check_png(fig, tmp_path / "one.png", dpi=50)
    with pytest.raises(TypeError, match="results: expected ERFResults"):
        plot_erf({"a": [1, 2]})


def test_allocation_and_macs(tmp_path):
    fig = plot_allocation(["resnet50", "scr_resnet50", "cr_resnet50"], path=tmp_path / "alloc.png")
    check_png(fig, tmp_path / "alloc.png")
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"resnet50\n[3, 4, 6, 3]", "cr_resnet50\n[1, 3, 5, 7]", "C5, stride 32"} <= texts
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["dilation 1", "dilation 2", "dilation 3"]
    fig = plot_macs({"R50": "resnet50", "CR": "cr_resnet50"}, input_size=224, path=tmp_path / "macs.png")
    check_png(fig, tmp_path / "macs.png")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["stem", "C2", "C3", "C4", "C5"]
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == "R50 (total 4.09 G)"
    with pytest.raises(ValueError, match=r"parts: expected names among .*got 'fpn'"):
        plot_macs("resnet50", parts=["C5", "fpn"])
    with pytest.raises(ValueError, match="labels: expected 2 labels"):
        plot_allocation(["resnet50", "cr_resnet50"], labels=["a"])


def test_search_figures(tmp_path, example_result, differentiable_result):
    fig = plot_stage_search(example_result, path=tmp_path / "stage.png")
    check_png(fig, tmp_path / "stage.png")
    fig = plot_dilation_search(example_result, path=tmp_path / "greedy.png")
    check_png(fig, tmp_path / "greedy.png")
    fig = plot_dilation_search(differentiable_result, path=tmp_path / "diff.png")
    check_png(fig, tmp_path / "diff.png")
    with pytest.raises(ValueError, match="metric: expected a metric of the stage search"):
        plot_stage_search(example_result, metric="mAP")
    paths = plot_search(example_result, tmp_path / "all", dpi=60)
    assert sorted(paths) == ["allocation", "dilation_search", "macs", "stage_search"]
    assert all(p.is_file() and p.stat().st_size > 1000 for p in paths.values())


def test_no_pyplot_and_no_backend_switch(tmp_path):
    code = (
        "import sys, crnas.analysis as a\n"
        "assert 'matplotlib' not in sys.modules\n"
        f"a.plot_allocation('cr_resnet50', path={str(tmp_path / 'x.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "module://does_not_exist"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_search_figures_say_what_the_fallback_kept(tmp_path, example_result):
    result = json.loads(json.dumps(example_result))
    baseline, n = result["baseline"]["blocks"], sum(result["stage_search"]["best"])
    lead = {"value": 0.004, "ci": [-0.01, 0.02]}
    conf = lambda winner, reference: {  # noqa: E731
        "winner": winner, "reference": reference, "lead": lead, "indistinguishable": 1, "candidates": 2, "images": 8, "resamples": 100,
        "level": 0.95,
    }
    result["stage_search"].update(best=baseline, fallback=True, confidence=conf(result["stage_search"]["best"], baseline))
    pick = result["dilation_search"]["dilations"]
    result["dilation_search"]["final"] = {
        "candidates": [{"dilations": pick, "metrics": {"AP": 0.1}}, {"dilations": [1] * n, "metrics": {"AP": 0.096}}],
        "confidence": conf(pick, [1] * n), "fallback": True,
    }
    stage = plot_stage_search(result)
    assert stage.axes[0].get_title().endswith("kept the baseline (fallback)")
    winner = result["stage_search"]["allocations"][0]["blocks"]  # still marked as the best
    assert [t.get_text() for t in stage.axes[0].get_legend().get_texts()][1:] == [f"best {winner}", f"baseline {baseline}"]
    greedy = plot_dilation_search(result)
    assert greedy.axes[0].get_title().splitlines()[-1] == (
        "final check: the pick leads all-dilation-1 by +0.40 AP (95% CI -1.00 .. +2.00): kept all-dilation-1"
    )
