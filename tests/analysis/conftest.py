from __future__ import annotations

import json
from pathlib import Path

import pytest

#: The shipped example: ``crnas search --synthetic --family resnet50 --preset tiny``.
EXAMPLE = Path(__file__).resolve().parents[2] / "notebooks" / "example" / "tiny_resnet50_result.json"


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models and tensors: every test here runs on one torch thread (see tests/conftest.py)."""


@pytest.fixture(scope="session")
def example_path() -> Path:
    return EXAMPLE


@pytest.fixture(scope="session")
def example_result() -> dict:
    return json.loads(EXAMPLE.read_text())


@pytest.fixture
def differentiable_result(example_result) -> dict:
    """The example with its dilation search replaced by a differentiable one (probabilities per block)."""
    blocks = sum(example_result["stage_search"]["best"])
    probabilities = [[0.2, 0.7, 0.1] if b % 3 else [0.6, 0.3, 0.1] for b in range(blocks)]
    return {
        **example_result,
        "dilation_search": {
            "method": "differentiable", "dilations": [2 if b % 3 else 1 for b in range(blocks)], "metrics": {"AP": 0.1},
            "probabilities": probabilities,
        },
    }
