"""Stand-alone runs: one architecture trained from scratch with a search's detector settings and schedule
and evaluated, keyed by everything its result depends on (:class:`StandaloneJob`) and cached
(:class:`StandaloneCache`) so that audits, the depth-fit stage ranking (docs/design.md#depth-fit) and the
experiment scripts train each run once. Every run is a resumable :func:`crnas.train.train_detector` run."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from crnas import distributed
from crnas.arch import get_architecture
from crnas.data.base import DetectionDataset
from crnas.detection import backbone_training, build_detector
from crnas.eval import coco_eval
from crnas.jsonfile import write_json
from crnas.search.config import SearchConfig
from crnas.train import train_detector

__all__ = [
    "data_fingerprint", "StandaloneJob", "StandaloneCache", "default_cache_dir", "Trainer", "Entry", "standalone_detector",
    "standalone_trainer", "run_jobs", "train_in_order", "job_factory",
]

logger = logging.getLogger(__name__)


def data_fingerprint(dataset: DetectionDataset) -> str:
    """SHA-256 of the ground truth (image ids, boxes, labels) of every image, in order."""
    h = hashlib.sha256()
    for i in range(len(dataset)):
        t = dataset.target(i)
        h.update(str(t["image_id"]).encode())
        h.update(t["boxes"].to(torch.float32).numpy().tobytes())
        h.update(t["labels"].to(torch.int64).numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class StandaloneJob:
    """One stand-alone training: everything its result depends on is in :meth:`key_dict`."""

    architecture: dict[str, Any]
    seed: int
    iterations: int
    train_fingerprint: str
    eval_fingerprint: str
    detector: dict[str, Any]
    schedule: dict[str, Any]

    def key_dict(self) -> dict[str, Any]:
        return {**asdict(self), "torch": torch.__version__.split("+")[0]}

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.key_dict(), sort_keys=True).encode()).hexdigest()


def default_cache_dir() -> Path:
    """``$CRNAS_CACHE/standalone``, else ``~/.cache/crnas/standalone``."""
    root = os.environ.get("CRNAS_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "crnas") / "standalone"


class StandaloneCache:
    """One directory per :class:`StandaloneJob` key: ``job.json``, the resumable training checkpoint,
    and ``metrics.json`` once trained and evaluated."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def run_dir(self, job: StandaloneJob) -> Path:
        return self.root / job.key()[:24]

    def get(self, job: StandaloneJob) -> dict[str, float] | None:
        path = self.run_dir(job) / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def put(self, job: StandaloneJob, metrics: dict[str, float]) -> None:
        d = self.run_dir(job)
        d.mkdir(parents=True, exist_ok=True)
        write_json(d / "job.json", job.key_dict())
        write_json(d / "metrics.json", metrics)


#: ``trainer(job, run_dir, progress) -> COCO metrics``: trains and evaluates one stand-alone run.
Trainer = Callable[[StandaloneJob, Path, bool], dict[str, float]]


#: An audited architecture: blocks, dilations, supernet AP, supernet rank.
Entry = tuple[list[int], list[int], float, int]


def standalone_detector(config: SearchConfig, architecture: dict[str, Any], num_classes: int) -> torch.nn.Module:
    """The detector a stand-alone run of ``architecture`` (a job's) trains, with the search's detector
    settings (and ``weights_backbone``, if it had one), before training."""
    layers, norm = backbone_training(config.weights_backbone is not None, config.norm)
    return build_detector(
        config.detector, get_architecture(architecture), num_classes=num_classes, weights_backbone=config.weights_backbone,
        trainable_layers=layers, norm_layer=norm, fpn_channels=config.fpn_channels,
        representation_size=config.representation_size, min_size=config.min_size, max_size=config.max_size,
        **config.detector_kwargs,
    )


def standalone_trainer(config: SearchConfig, train_set: DetectionDataset, eval_set: DetectionDataset) -> Trainer:
    """Trains on ``train_set`` with :func:`crnas.train.train_detector` (the search's detector settings and
    schedule; from the search's ``weights_backbone`` if it had one, with torchvision's fine-tuning
    defaults for a pretrained backbone) and evaluates on ``eval_set`` with :func:`crnas.eval.coco_eval`."""

    classes = len(train_set.classes) + 1

    def train(job: StandaloneJob, run_dir: Path, progress: bool) -> dict[str, float]:
        torch.manual_seed(job.seed)
        model = standalone_detector(config, job.architecture, classes)
        train_detector(
            model, train_set, iterations=job.iterations, batch_size=config.batch_size, lr_per_image=config.lr_per_image,
            warmup_iters=config.lr_warmup, device=config.device, seed=job.seed, num_workers=config.num_workers,
            checkpoint_dir=run_dir, checkpoint_every=max(1, min(config.checkpoint_every, job.iterations)), progress=progress,
        )
        return coco_eval(model, eval_set, batch_size=config.eval_batch_size, device=config.device)

    return train


def run_jobs(
    jobs: Sequence[StandaloneJob], cache: StandaloneCache, trainer: Trainer, *, progress: bool = True
) -> list[dict[str, float]]:
    """Train and evaluate each job that ``cache`` does not hold yet (each run resumes from its checkpoint);
    returns every job's metrics, in order, cached or new.

    Each run holds an exclusive lock (``flock`` on ``run_dir/.lock``) while it trains, so several
    processes — audits of different searches, or the same command started once per core — can share one
    cache: each trains the runs no other process holds, then waits for the ones still being trained."""
    pending = [j for j in jobs if cache.get(j) is None]
    bar = tqdm(total=len(pending), desc="stand-alone", unit="run", disable=not progress)
    for blocking in (False, True):  # first the runs nobody holds, then wait for the others' runs
        for job in pending:
            run_dir = cache.run_dir(job)
            run_dir.mkdir(parents=True, exist_ok=True)
            with open(run_dir / ".lock", "w") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                except BlockingIOError:
                    continue  # another process trains it now
                if cache.get(job) is not None:
                    continue  # trained by another process meanwhile
                metrics = trainer(job, run_dir, progress)
                cache.put(job, metrics)
            bar.update()
            logger.info("stand-alone %s %s seed %d: AP %.4f", job.architecture["blocks"], job.architecture["dilations"], job.seed, metrics["AP"])
        pending = [j for j in pending if cache.get(j) is None]
    bar.close()
    done = []
    for job in jobs:
        cached = cache.get(job)
        assert cached is not None, "the blocking pass waited for every run"
        done.append(cached)
    return done


def job_factory(
    config: SearchConfig, train_set: DetectionDataset, eval_set: DetectionDataset, iterations: int, seeds: Sequence[int]
) -> Callable[[Entry], list[StandaloneJob]]:
    """``entry -> [StandaloneJob per seed]`` (an entry's blocks and dilations; the search's detector
    settings and schedule) with the data fingerprints and settings computed once."""
    train_fp, eval_fp = data_fingerprint(train_set), data_fingerprint(eval_set)
    detector = {
        "detector": config.detector, "num_classes": len(train_set.classes) + 1, "fpn_channels": config.fpn_channels,
        "representation_size": config.representation_size, "min_size": config.min_size, "max_size": config.max_size,
        "detector_kwargs": config.detector_kwargs,
    }
    if config.weights_backbone is not None:  # absent otherwise, so the keys of runs from scratch stay as they were
        weights = Path(config.weights_backbone)
        detector["weights_backbone"] = (
            "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else config.weights_backbone
        )
    if config.norm != "batch":  # absent for BatchNorm, so the keys of earlier runs stay as they were
        detector["norm"] = config.norm
    schedule = {"batch_size": config.batch_size, "lr_per_image": config.lr_per_image, "warmup": config.lr_warmup}

    def jobs(entry: Entry) -> list[StandaloneJob]:
        blocks, dilations, _, _ = entry
        arch = get_architecture({"family": config.family, "blocks": blocks, "dilations": dilations, "width": config.width}).to_dict()
        return [StandaloneJob(arch, s, iterations, train_fp, eval_fp, detector, schedule) for s in seeds]

    return jobs


def train_in_order(jobs: Sequence[StandaloneJob], cache: StandaloneCache, trainer: Trainer, *, progress: bool = True) -> list[dict[str, float]]:
    """Every job's metrics, in order: cached, or trained now by every process of a distributed run
    together (:func:`crnas.train.train_detector` splits each batch over the ranks; rank 0 writes the
    checkpoints and the cache) — the form a search's own stand-alone runs take, where :func:`run_jobs`
    shares one cache between independent processes."""
    done = []
    for job in jobs:
        metrics = cache.get(job)
        if metrics is None:
            run_dir = cache.run_dir(job)
            run_dir.mkdir(parents=True, exist_ok=True)
            metrics = trainer(job, run_dir, progress)
            if distributed.is_main():
                cache.put(job, metrics)
            logger.info("stand-alone %s seed %d: AP %.4f", job.architecture["blocks"], job.seed, metrics["AP"])
        done.append(metrics)
    distributed.barrier()
    return done
