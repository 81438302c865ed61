"""Fixtures for the training tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models and tensors: every test here runs on one torch thread (see tests/conftest.py)."""
