"""The hierarchical search, end to end (docs/design.md#search-phases): stage supernet → stage search → operation
supernet (initialised from the stage supernet) → dilation search (greedy beam or differentiable)
→ ``result.json``.

Every phase checkpoints into the output directory and is skipped or continued when the search runs
again with ``resume=True``: supernet training through :func:`crnas.train.train_detector`'s exact
resume, the searches through their JSON-lines logs. Killing the process at any point and running it
again gives the same final result (same machine, torch and thread count).

Launched with ``torchrun --nproc_per_node N -m crnas search ...``, the supernets train with
DistributedDataParallel and archval scoring is sharded (:mod:`crnas.distributed`); rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import crnas
from crnas import distributed, flops
from crnas.arch import DETECTORS, MACS_INPUT_SIZE, SAMPLINGS, Architecture, StageSpace
from crnas.data import split
from crnas.data.base import DetectionDataset
from crnas.data.check import preflight
from crnas.data.seeding import derive_seed
from crnas.detection import detection_limit
from crnas.jsonfile import write_json
from crnas.search.confidence import NOISE_ADVICE, Confidence, DetectionStore, stage_confidence, step_confidence, step_key
from crnas.search.procedures import DifferentiableSearch, PathSampler, StageSampler, greedy_dilation_search, stage_search
from crnas.search.scoring import Scorer
from crnas.search.supernet import build_supernet_detector, supernet_of
from crnas.train import CHECKPOINT_NAME, train_detector

__all__ = ["SearchConfig", "PRESETS", "preset", "run_search", "data_fingerprint"]

logger = logging.getLogger(__name__)

INIT = 31  # derive_seed stream of the supernet initialisation
CONFIDENCE = 32  # derive_seed stream of the bootstrap resamples

METHODS = ("greedy", "differentiable")


@dataclass
class SearchConfig:
    """Everything that determines a search (saved in ``config.json`` and ``result.json``)."""

    family: str = "resnet50"
    #: Channel multiplier of the searched networks (1.0 is the paper's).
    width: float = 1.0
    #: Total block count (default: the baseline's for the ResNet series).
    budget: int | None = None
    #: Relative MACs tolerance around the baseline (default 0.01 for MobileNetV2).
    flops_tolerance: float | None = None
    #: Per-stage choice sets (default: the paper's / crnas's, ``StageSpace.paper``).
    choices: list[list[int]] | None = None
    detector: str = "faster_rcnn_fpn"
    method: str = "greedy"
    #: Detections kept per image by the detector and counted by the AP (COCO's 100; raise for dense scenes).
    max_detections: int = 100
    #: The detector's resize: shorter side, longer side cap.
    min_size: int = 800
    max_size: int = 1333
    #: FPN channels and R-CNN box-head width (torchvision's 256 and 1024).
    fpn_channels: int = 256
    representation_size: int = 1024
    #: Further torchvision detector arguments (e.g. ``box_batch_size_per_image``).
    detector_kwargs: dict[str, Any] = field(default_factory=dict)
    lr_warmup: int | None = None
    batch_size: int = 2
    lr_per_image: float = 0.00125
    stage_iterations: int = 1000
    op_iterations: int = 1000
    checkpoint_every: int = 200
    recal_batches: int = 4
    eval_batch_size: int = 2
    beam: int = 3
    #: Bootstrap resamples of archval behind every confidence interval of the search.
    bootstrap_resamples: int = 1000
    #: Score the candidates of a greedy step together in one pass (per-sample paths through the fused
    #: op, shared BN recalibration) instead of one by one. Off for the CPU presets, where one by one
    #: measured faster (benches/bench_search.py); on for ``paper`` (GPUs, large batches).
    joint: bool = True
    #: Same random completions for every candidate of a step on a mini-batch.
    common_random: bool = True
    #: Op-supernet training samples one path per image (the batch grouped by dilation) instead of per batch.
    per_sample_paths: bool = True
    #: How the stage supernet draws its allocation per step (``crnas.arch.SAMPLINGS``): ``uniform`` over the
    #: feasible allocations (the paper's) or ``balanced`` per stage depth (docs/design.md#stage-sampling).
    stage_sampling: str = "uniform"
    arch_lr: float = 3e-3
    val_fraction: float = 0.05
    seed: int = 0
    device: str = "cpu"
    num_workers: int = 0
    #: Input size and convention of the MACs reported for allocations (the paper's 800×1088).
    macs_input: tuple[int, int] = MACS_INPUT_SIZE
    #: Data description (set by the CLI): kind and arguments.
    data: dict[str, Any] = field(default_factory=dict)
    #: The preset these settings started from.
    preset: str | None = None

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {self.method!r}")
        if self.detector not in DETECTORS:
            raise ValueError(f"detector: expected one of {', '.join(DETECTORS)}, got {self.detector!r}")
        if self.budget is not None and self.flops_tolerance is not None:
            raise ValueError("budget, flops_tolerance: expected at most one of them, got both")
        for name in (
            "stage_iterations", "op_iterations", "batch_size", "eval_batch_size", "recal_batches", "beam", "checkpoint_every", "bootstrap_resamples",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {getattr(self, name)}")
        detection_limit(self.detector, self.max_detections)  # raises on a bad cap
        if self.stage_sampling not in SAMPLINGS:
            raise ValueError(f"stage_sampling: expected one of {', '.join(SAMPLINGS)}, got {self.stage_sampling!r}")

    def space(self) -> StageSpace:
        """The stage space this configuration searches."""
        paper = StageSpace.paper(self.family)
        choices = self.choices or paper.choices
        if self.budget is None and self.flops_tolerance is None:
            if paper.budget["type"] == "blocks":
                return StageSpace(self.family, choices, budget=paper.budget["total"], width=self.width)
            return StageSpace(self.family, choices, flops_tolerance=paper.budget["tolerance"], width=self.width)
        return StageSpace(self.family, choices, budget=self.budget, flops_tolerance=self.flops_tolerance, width=self.width)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["macs_input"] = list(self.macs_input)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchConfig:
        d = dict(d)
        d["macs_input"] = tuple(d.get("macs_input", MACS_INPUT_SIZE))
        return cls(**d)


#: Heads sized for small images and CPUs (torchvision's defaults sample 512 RoIs and keep 2000 proposals).
_SMALL_HEADS = dict(
    rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300, rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=150,
    box_batch_size_per_image=128,
)

#: Presets: ``tiny`` (tests; ``crnas search --dry-run`` estimates the time), ``demo`` (``make demo``, under 10 minutes),
#: ``paper`` (the paper's detector settings, for GPUs; docs/design.md#presets). They set width, image size, schedule
#: lengths and batch sizes; the family, budget, data and method come from the user.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        width=0.125, min_size=96, max_size=128, fpn_channels=32, representation_size=64, detector_kwargs=_SMALL_HEADS, max_detections=50,
        batch_size=4, lr_per_image=0.0025, lr_warmup=10, stage_iterations=30, op_iterations=30, checkpoint_every=10,
        recal_batches=2, eval_batch_size=4, val_fraction=0.2, bootstrap_resamples=200, data=dict(kind="synthetic", num_images=40, image_size=128),
    ),
    "demo": dict(
        width=0.25, min_size=192, max_size=256, fpn_channels=64, representation_size=256, detector_kwargs=_SMALL_HEADS, max_detections=50,
        batch_size=4, lr_per_image=0.0025, lr_warmup=50, stage_iterations=400, op_iterations=200, checkpoint_every=50,
        recal_batches=2, eval_batch_size=8, val_fraction=0.1, joint=False, bootstrap_resamples=300,
        data=dict(kind="synthetic", num_images=320, image_size=256),
    ),
    "paper": dict(
        width=1.0, min_size=800, max_size=1333, batch_size=16, lr_per_image=0.00125, stage_iterations=90_000,
        op_iterations=90_000, checkpoint_every=1000, recal_batches=50, eval_batch_size=8, val_fraction=0.042,
        device="cuda", num_workers=4,
    ),
}


def preset(name: str, **overrides: Any) -> SearchConfig:
    """The configuration of a preset with ``overrides`` applied."""
    if name not in PRESETS:
        raise ValueError(f"preset: expected one of {', '.join(PRESETS)}, got {name!r}")
    values = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}, "preset": name}
    defaults, data = PRESETS[name].get("data"), overrides.get("data")
    # The preset's data settings complete a partial spec of the same kind, never another kind's.
    if defaults and data and data.get("kind", defaults["kind"]) == defaults["kind"]:
        values["data"] = {**defaults, **data}
    config = SearchConfig(**values)
    if config.data.get("kind") == "synthetic":  # COCO's size mix at the detector's input (crnas.data.synthetic)
        config.data = {"sizes": "coco", "size_reference": min(config.min_size, config.max_size), **config.data}
    config.validate()
    return config


def data_fingerprint(dataset: DetectionDataset) -> str:
    """SHA-256 of the ground truth (image ids, boxes, labels) of every image, in order."""
    h = hashlib.sha256()
    for i in range(len(dataset)):
        t = dataset.target(i)
        h.update(str(t["image_id"]).encode())
        h.update(t["boxes"].to(torch.float32).numpy().tobytes())
        h.update(t["labels"].to(torch.int64).numpy().tobytes())
    return h.hexdigest()


def _versions() -> dict[str, str]:
    import torchvision

    return {
        "crnas": crnas.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "threads": str(torch.get_num_threads()),
        "processes": str(distributed.world_size()),
    }


def _write_json(path: Path, data: Any) -> None:
    """Write atomically; rank 0 alone writes when distributed."""
    if distributed.is_main():
        write_json(path, data)


def _supernet(config: SearchConfig, space: StageSpace, num_classes: int) -> torch.nn.Module:
    torch.manual_seed(derive_seed(config.seed, INIT))
    return build_supernet_detector(
        config.detector, space, num_classes=num_classes, min_size=config.min_size, max_size=config.max_size,
        fpn_channels=config.fpn_channels, representation_size=config.representation_size,
        **{**detection_limit(config.detector, config.max_detections), **config.detector_kwargs},
    ).to(config.device)


def _train(
    config: SearchConfig, model: torch.nn.Module, data: DetectionDataset, iterations: int, out: Path, callbacks: list[Any], progress: bool
) -> None:
    train_detector(
        model, data, iterations=iterations, batch_size=config.batch_size, lr_per_image=config.lr_per_image,
        warmup_iters=config.lr_warmup, device=config.device, seed=config.seed, num_workers=config.num_workers, checkpoint_dir=out,
        checkpoint_every=config.checkpoint_every, callbacks=callbacks, progress=progress,
    )


def _log_confidence(conf: Confidence | None, what: str, baseline_name: str = "the baseline") -> None:
    if conf is None:
        logger.info("%s: no kept detections, no confidence interval", what)
        return
    logger.info("%s", conf.summary(what))
    if not conf.lead.significant:
        logger.warning("%s: the winner cannot be told apart from %s; %s", what, baseline_name, NOISE_ADVICE)


def _last_confidence(steps: list[dict[str, Any]]) -> Confidence | None:
    last = steps[-1].get("confidence") if steps else None
    return None if last is None else Confidence.from_dict(last)


def _load_weights(model: torch.nn.Module, checkpoint: Path) -> None:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])


def run_search(
    config: SearchConfig, dataset: DetectionDataset, out_dir: str | os.PathLike[str], *, resume: bool = True, progress: bool = True
) -> dict[str, Any]:
    """Run (or continue) the hierarchical search of ``config`` on ``dataset``; write and return ``result.json``."""
    config.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "config.json"
    current = json.loads(json.dumps(config.to_dict()))  # as it reads back from config.json (tuples as lists)
    if saved.is_file():
        previous = json.loads(saved.read_text())
        if not resume:
            raise FileExistsError(f"out_dir: {out} already holds a search; pass resume=True (--resume) to continue it or use another directory")
        if previous != current:
            diff = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
            raise ValueError(f"out_dir: {out} holds a search with another configuration (differs in {', '.join(diff)})")
    distributed.barrier()  # everyone has read config.json before rank 0 rewrites it
    _write_json(saved, current)
    started = time.time()

    archtrain, archval = split(dataset, config.val_fraction, config.seed)
    preflight([("archtrain", archtrain), ("archval", archval)])
    num_classes = len(dataset.classes) + 1
    space = config.space()
    if len(space) == 0:
        raise ValueError(f"space: {space!r} has no feasible allocation; loosen the budget")
    logger.info("%s; archtrain %d, archval %d images; %d classes", space, len(archtrain), len(archval), num_classes - 1)
    convention = dict(fpn_channels=config.fpn_channels, representation_size=config.representation_size)
    allocation_macs = flops.count_many([space.architecture(b) for b in space.allocations()], config.macs_input, config.detector, **convention)

    # 1. stage supernet
    stage_dir = out / "stage_supernet"
    model = _supernet(config, space, num_classes)
    _train(config, model, archtrain, config.stage_iterations, stage_dir, [StageSampler(space, config.seed, config.stage_sampling)], progress)
    timing = {"stage_supernet_s": time.time() - started}

    # 2. stage search
    t0 = time.time()
    scorer = Scorer(model, archtrain, archval, config.eval_batch_size, config.recal_batches, config.seed, config.device)
    stage_store = DetectionStore(out / "detections" / "stage")
    table = stage_search(scorer, space, out / "stage_search.jsonl", macs=allocation_macs, progress=progress, store=stage_store)
    best_blocks = table[0]["blocks"]
    timing["stage_search_s"] = time.time() - t0
    logger.info("stage search: best allocation %s (AP %.4f)", best_blocks, table[0]["metrics"]["AP"])
    baseline = Architecture.baseline(config.family).replace(width=config.width)
    stage_conf = stage_confidence(
        table, stage_store, archval, baseline.blocks, resamples=config.bootstrap_resamples, seed=derive_seed(config.seed, CONFIDENCE),
        max_detections=scorer.max_detections,
    )
    _log_confidence(stage_conf, "stage search")

    # 3. operation supernet, from the stage supernet's weights
    t0 = time.time()
    op_dir = out / "op_supernet"
    model = _supernet(config, space, num_classes)
    if not (op_dir / CHECKPOINT_NAME).is_file():
        _load_weights(model, stage_dir / CHECKPOINT_NAME)
    supernet = supernet_of(model)
    supernet.set_allocation(best_blocks)
    differentiable = None
    if config.method == "differentiable":
        differentiable = DifferentiableSearch(
            archval, len(supernet.active_convs), supernet.dilations, batch_size=config.batch_size, lr=config.arch_lr,
            seed=config.seed, device=config.device,
        )
        callbacks: list[Any] = [differentiable]
    else:
        callbacks = [PathSampler(config.seed, per_sample=config.per_sample_paths)]
    _train(config, model, archtrain, config.op_iterations, op_dir, callbacks, progress)
    timing["op_supernet_s"] = time.time() - t0

    # 4. dilation search
    t0 = time.time()
    scorer = Scorer(model, archtrain, archval, config.eval_batch_size, config.recal_batches, config.seed, config.device)
    if differentiable is not None:
        dilations = differentiable.architecture()
        metrics = scorer.score_candidates([dilations], len(dilations), joint=False)[0]
        dilation_result: dict[str, Any] = {
            "method": "differentiable", "dilations": dilations, "metrics": metrics,
            "choices": list(differentiable.dilations),
            "probabilities": differentiable.probabilities().tolist(),
        }
    else:
        step_store = DetectionStore(out / "detections" / "dilation")
        greedy = greedy_dilation_search(
            scorer, out / "dilation_search.jsonl", k=config.beam, joint=config.joint, common_random=config.common_random, progress=progress,
            store=step_store,
        )
        for step in greedy["steps"]:
            ranked = sorted(step["candidates"], key=lambda c: (-c["metrics"]["AP"], c["dilations"]))
            conf = step_confidence(
                [c["dilations"] for c in step["candidates"]], [c["dilations"] for c in ranked[:2]], step_store.load(step_key(step["step"])),
                archval, resamples=config.bootstrap_resamples, seed=derive_seed(config.seed, CONFIDENCE, step["step"] + 1),
                max_detections=scorer.max_detections,
            )
            step["confidence"] = None if conf is None else conf.to_dict()
        _log_confidence(_last_confidence(greedy["steps"]), "dilation search (last step)", baseline_name="the runner-up")
        dilation_result = {"method": "greedy", **greedy}
    timing["dilation_search_s"] = time.time() - t0

    found = space.architecture(best_blocks, dilation_result["dilations"])
    macs = lambda a: flops.count(a, config.macs_input, config.detector, **convention).macs  # noqa: E731
    result = {
        "architecture": found.to_dict(),
        "baseline": baseline.to_dict(),
        "macs": {
            "found": macs(found), "baseline": macs(baseline), "input_size": list(config.macs_input), "detector": config.detector,
            "convention": {"description": "conv + linear MACs, whole detector without RoIAlign (docs/flops.md)", **convention},
        },
        "stage_search": {
            "best": best_blocks,
            "allocations": [{"blocks": r["blocks"], "macs": r["macs"], **r["metrics"]} for r in table],
            "confidence": None if stage_conf is None else stage_conf.to_dict(),
        },
        "dilation_search": dilation_result,
        "space": {"family": space.family, "choices": space.choices, "budget": space.budget, "width": space.width, "size": len(space)},
        "data": {
            **config.data, "images": len(dataset), "archtrain": len(archtrain), "archval": len(archval),
            "classes": list(dataset.classes), "fingerprint": data_fingerprint(dataset),
        },
        "config": config.to_dict(),
        "seeds": {"seed": config.seed, "supernet_init": derive_seed(config.seed, INIT)},
        "versions": _versions(),
    }
    _write_json(out / "result.json", result)
    _write_json(out / "timing.json", {k: round(v, 1) for k, v in timing.items()})  # not part of the (reproducible) result
    return result
