"""Training a torchvision-style detector: SGD, linear warm-up, step decay, and exact resume.

The recipe is the paper's 1× schedule (docs/design.md#training): SGD with momentum 0.9 and weight
decay 1e-4, a learning rate of 0.00125 per image (0.02 for 16 images), linear warm-up, then ×0.1 at
8/12 and 11/12 of the schedule. AMP (autocast + GradScaler) is on by default on CUDA and off on CPU.

Resuming is exact: with ``checkpoint_dir`` set, ``last.pt`` holds the model, optimizer, scheduler,
GradScaler, the torch/python/numpy RNG states, the iteration, the loss and LR histories and every
callback's ``state_dict()``; it is written atomically (a temporary file, fsync, ``os.replace``), so a
kill at any moment leaves the previous checkpoint intact. The data order depends only on
``(seed, epoch)`` and augmentation only on ``(seed, epoch, index)`` (:func:`crnas.data.make_loader`),
so a resumed run restarts inside its epoch on exactly the batch the uninterrupted run would have seen,
and on CPU ends with bit-identical weights, whatever ``num_workers`` is (same machine, same torch
version and thread count; CUDA kernels are not bit-reproducible in general).

Modules: :mod:`~crnas.train.trainer` (:func:`train_detector`, the entry point),
:mod:`~crnas.train.checkpoint` (what a checkpoint holds, how it is written and resumed),
:mod:`~crnas.train.schedule` (the learning-rate factor), :mod:`~crnas.train.loop` (the steps) and
:mod:`~crnas.train.callbacks` (the hooks a caller plugs in).

Example::

    from crnas.data import SyntheticDetection
    from crnas.train import train_detector
    result = train_detector(model, SyntheticDetection(512), epochs=12, batch_size=4, checkpoint_dir="runs/a")
"""

from crnas.train.callbacks import StopTraining, TrainCallback
from crnas.train.checkpoint import CHECKPOINT_NAME, TrainResult
from crnas.train.schedule import WarmupMultiStep
from crnas.train.trainer import train_detector

__all__ = ["CHECKPOINT_NAME", "StopTraining", "TrainCallback", "TrainResult", "WarmupMultiStep", "train_detector"]
