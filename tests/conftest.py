"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Run the test on one torch thread, restored afterwards: for tiny tensors torch's thread pool
    costs more than it saves, and on a busy 2-core machine OpenMP's spin-waiting makes it 10-40x slower
    (torchrun workers of the distributed tests run on one thread too)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
