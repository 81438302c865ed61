"""Fixtures of the framework-adapter tests: the README's snippets, and torchvision's ImageNet weights
without the download."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchvision

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def readme_snippet():
    """``readme_snippet(first_line)``: the README's ```python block that starts with ``first_line`` (what
    the README shows, verbatim)."""

    def snippet(first_line: str) -> str:
        blocks = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S) if b.startswith(first_line)]
        assert len(blocks) == 1, f"README.md: expected one python block starting with {first_line!r}, found {len(blocks)}"
        return blocks[0]

    return snippet


@pytest.fixture
def torchvision_resnet50(tmp_path, monkeypatch):
    """torchvision's default ResNet50 ImageNet weights where ``weights="torchvision"`` finds them (the
    download cache under ``$TORCH_HOME``), randomly initialised instead of downloaded; returns the state dict."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    weights = torchvision.models.ResNet50_Weights.DEFAULT
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    state = torchvision.models.resnet50().state_dict()
    torch.save(state, path)
    return state
