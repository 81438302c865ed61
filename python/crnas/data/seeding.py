"""Seeds derived from keys, so every random choice in the data pipeline is a function of its position.

Training resumes bit-identically only if the order of an epoch and the augmentation of a sample do not
depend on how many samples were drawn before, in which process, or on the global RNG. Every stream is
therefore seeded from a tuple of non-negative integers through :class:`numpy.random.SeedSequence`:

* epoch order: ``(seed, ORDER, epoch)``
* augmentation of one sample: ``(seed, AUGMENT, epoch, index)``
* DataLoader worker base seed: ``(seed, WORKERS, epoch)``
* archtrain / archval split: ``(seed, SPLIT)``
* the global RNGs during training (RPN/RoI sampling): ``(seed, TRAIN)``
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["AUGMENT", "ORDER", "SPLIT", "TRAIN", "WORKERS", "augmentation_generator", "derive_seed"]

ORDER, AUGMENT, WORKERS, SPLIT, TRAIN = 0, 1, 2, 3, 4


def derive_seed(*keys: int) -> int:
    """A 63-bit seed that is a fixed function of ``keys`` (non-negative ints), whatever the platform."""
    if any(int(k) != k or k < 0 for k in keys):
        raise ValueError(f"keys: expected non-negative ints, got {keys}")
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def augmentation_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator that augments sample ``index`` of ``epoch`` (CPU, independent of the global RNG)."""
    return torch.Generator().manual_seed(derive_seed(seed, AUGMENT, epoch, index))
