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

import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import crnas
from crnas import distributed, flops
from crnas.arch import Architecture, StageSpace
from crnas.data import split
from crnas.data.base import DetectionDataset
from crnas.data.check import preflight
from crnas.data.seeding import derive_seed
from crnas.detection import detection_limit, norm_by_name
from crnas.eval.bootstrap import ImageEvaluation
from crnas.eval.detections import Record
from crnas.jsonfile import write_json
from crnas.search.algorithms import final_check, greedy_dilation_search, stage_search
from crnas.search.callbacks import DifferentiableSearch, PathSampler, StageSampler
from crnas.search.confidence import (
    NOISE_ADVICE,
    Confidence,
    DetectionStore,
    SplitHalf,
    split_half,
    stage_confidence,
    stage_evaluations,
    step_confidence,
    step_key,
)
from crnas.search.config import LEGACY_WEIGHT_SETTINGS, SearchConfig
from crnas.search.depth import depth_fit, farthest_point, linear_predictions
from crnas.search.result import (
    DilationSearch,
    FinalCheck,
    ScoredAllocation,
    SearchData,
    SearchedSpace,
    SearchMacs,
    SearchResult,
    StageProbes,
    StageSearch,
)
from crnas.search.scoring import Scorer
from crnas.search.standalone import StandaloneCache, data_fingerprint, job_factory, standalone_trainer, train_in_order
from crnas.search.supernet import build_supernet_detector, supernet_of
from crnas.train import CHECKPOINT_NAME, train_detector

__all__ = [
    "run_search", "run_final_check", "supernet_detector", "trained_supernet", "stage_checkpoint", "finetune_path",
    "STAGE_SUPERNET", "OP_SUPERNET", "PROBES",
]

logger = logging.getLogger(__name__)

INIT = 31  # derive_seed stream of the supernet initialisation
CONFIDENCE = 32  # derive_seed stream of the bootstrap resamples
SPLIT = 33  # derive_seed stream of the few-shot parts' training
#: The supernets' directories (training checkpoints) inside a search directory.
STAGE_SUPERNET, OP_SUPERNET = "stage_supernet", "op_supernet"
#: The depth-fit ranking's stand-alone probe runs (a :class:`~crnas.search.standalone.StandaloneCache`) inside a search directory.
PROBES = "probes"


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


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically; rank 0 alone writes when distributed."""
    if distributed.is_main():
        write_json(path, data)


def _add_time(out: Path, phase: str, since: float) -> None:
    """Add the seconds since ``since`` to ``phase`` in ``timing.json`` (not part of the reproducible result):
    each phase's wall time summed over the runs of a resumed search, a killed run's unfinished phase aside."""
    file = out / "timing.json"
    timing = json.loads(file.read_text()) if file.is_file() else {}
    timing[phase] = round(timing.get(phase, 0.0) + time.time() - since, 1)
    _write_json(file, timing)


def supernet_detector(config: SearchConfig, space: StageSpace, num_classes: int) -> torch.nn.Module:
    """The untrained supernet detector of ``config`` over ``space`` (its detector settings and norm), on
    ``config.device``, initialised from the search's seed."""
    torch.manual_seed(derive_seed(config.seed, INIT))
    return build_supernet_detector(
        config.detector, space, num_classes=num_classes, min_size=config.min_size, max_size=config.max_size,
        fpn_channels=config.fpn_channels, representation_size=config.representation_size,
        norm_layer=norm_by_name(config.norm), normalize_outputs=config.normalize_outputs,
        **{**detection_limit(config.detector, config.max_detections), **config.detector_kwargs},
    ).to(config.device)


def stage_sampler(config: SearchConfig, space: StageSpace, seed: int) -> StageSampler:
    """The stage supernet's training callback over ``space`` by ``config``'s sampling, sandwich and distillation."""
    return StageSampler(space, seed, config.stage_sampling, sandwich=config.stage_sandwich, distill=config.stage_distill)


def _train(
    config: SearchConfig, model: torch.nn.Module, data: DetectionDataset, iterations: int, out: Path, callbacks: list[Any], progress: bool,
    seed: int | None = None,
) -> None:
    train_detector(
        model, data, iterations=iterations, batch_size=config.batch_size, lr_per_image=config.lr_per_image,
        warmup_iters=config.lr_warmup, device=config.device, seed=config.seed if seed is None else seed, num_workers=config.num_workers,
        checkpoint_dir=out,
        checkpoint_every=config.checkpoint_every, callbacks=callbacks, progress=progress,
    )


def _log_confidence(conf: Confidence | None, what: str, baseline_name: str = "the baseline") -> None:
    if conf is None:
        logger.info("%s: no kept detections, no confidence interval", what)
        return
    logger.info("%s", conf.summary(what))
    if not conf.lead.significant:
        logger.warning("%s: the winner cannot be told apart from %s; %s", what, baseline_name, NOISE_ADVICE)


def _reliability(evaluations: Sequence[ImageEvaluation] | None, seed: int) -> SplitHalf | None:
    """The stage table's split-half archval reliability (docs/audit.md), logged; ``None`` without kept
    detections, or with too few allocations, images or differences in AP to measure it."""
    if evaluations is None:
        return None
    try:
        halves = split_half(evaluations, seed=seed)
    except ValueError:  # split_half's preconditions: >= 3 allocations, >= 4 images, AP differences on the halves
        return None
    logger.info("%s", halves.summary("stage search"))
    return halves


def run_final_check(
    config: SearchConfig,
    scorer: Scorer,
    search: DilationSearch,
    search_dir: Path,
    store: DetectionStore[list[list[Record]]] | None = None,
    *,
    finetune: int | None = None,
    checkpoints: Path | None = None,
) -> FinalCheck:
    """The dilation search's final check (docs/design.md#fallback): its finalists (the final beam, or
    the differentiable pick) against all-dilation-1, with the search's resamples and seed. With
    ``finetune`` iterations (default ``config.finetune_check``), the pick and all-dilation-1 are each
    fine-tuned from ``search_dir``'s operation supernet checkpoint on archtrain (``scorer.archtrain``),
    on their own path, with the search's batch, learning rate per image and schedule shape (warm-up a
    tenth of it at most), checkpointed under ``checkpoints`` when given (resumable), then compared."""
    finalists = [list(b) for b in search.steps[-1].beam] if search.steps else [list(search.dilations)]
    iterations = config.finetune_check if finetune is None else finetune

    def finetuned(dilations: list[int]) -> Scorer:
        model = trained_supernet(config, search_dir, OP_SUPERNET, scorer.supernet.allocation, len(scorer.archval.classes) + 1)
        supernet_of(model).set_dilations(dilations)
        finetune_path(config, model, scorer.archtrain, iterations, None if checkpoints is None else checkpoints / "-".join(map(str, dilations)))
        return Scorer(model, scorer.archtrain, scorer.archval, config.eval_batch_size, config.recal_batches, config.seed, config.device)

    return final_check(
        scorer, finalists, resamples=config.bootstrap_resamples, seed=derive_seed(config.seed, CONFIDENCE, 0), store=store,
        finetune=finetuned if iterations > 0 else None,
    )


def _load_weights(model: torch.nn.Module, checkpoint: Path) -> None:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])


def stage_checkpoint(config: SearchConfig, search_dir: Path, blocks: Sequence[int]) -> Path:
    """The stage supernet checkpoint of ``search_dir`` that scores ``blocks``: the shared one, or after a
    few-shot split (``config.split_stage``) the one of the part holding ``blocks``."""
    stage_dir = Path(search_dir) / STAGE_SUPERNET
    if config.split_stage is None:
        return stage_dir / CHECKPOINT_NAME
    for i, part in enumerate(config.stage_parts()):
        if list(blocks) in part:
            return _part_dir(stage_dir, i) / CHECKPOINT_NAME
    raise ValueError(f"blocks: expected an allocation of the search's space {config.space()!r}, got {list(blocks)}")


def _part_dir(stage_dir: Path, i: int) -> Path:
    return stage_dir / f"part{i}"


def trained_supernet(config: SearchConfig, search_dir: Path, which: str, blocks: Sequence[int], num_classes: int) -> torch.nn.Module:
    """A fresh supernet detector with the weights of ``search_dir``'s ``which`` checkpoint
    (:data:`STAGE_SUPERNET` — the part scoring ``blocks`` after a few-shot split — or :data:`OP_SUPERNET`),
    set to the allocation ``blocks``."""
    checkpoint = stage_checkpoint(config, search_dir, blocks) if which == STAGE_SUPERNET else search_dir / which / CHECKPOINT_NAME
    if not checkpoint.is_file():
        raise FileNotFoundError(f"search: the checkpoint {checkpoint} is missing (the search's {which.replace('_', ' ')})")
    model = supernet_detector(config, config.space(), num_classes)
    _load_weights(model, checkpoint)
    supernet_of(model).set_allocation(blocks)
    return model


def finetune_path(config: SearchConfig, model: torch.nn.Module, archtrain: DetectionDataset, iterations: int, checkpoints: Path | None) -> None:
    """Fine-tune a supernet detector on the one path it is set to: ``iterations`` on archtrain with the
    search's batch, learning rate per image, seed and schedule shape (warm-up a tenth of it at most),
    checkpointed under ``checkpoints`` when given (resumable)."""
    train_detector(
        model, archtrain, iterations=iterations, batch_size=config.batch_size, lr_per_image=config.lr_per_image,
        warmup_iters=min(config.lr_warmup or 0, iterations // 10), device=config.device, seed=config.seed, num_workers=config.num_workers,
        checkpoint_dir=checkpoints, checkpoint_every=config.checkpoint_every, progress=False,
    )


def _supernet_stage_search(
    config: SearchConfig, space: StageSpace, allocation_macs: Sequence[int], baseline: list[int], archtrain: DetectionDataset,
    archval: DetectionDataset, out: Path, progress: bool, started: float,
) -> StageSearch:
    """Phases 1 and 2 of the paper's search: the stage supernet (few-shot parts too) trained on
    archtrain, every allocation scored on archval with its weights, the winner's confidence against
    ``baseline`` and, with ``stage_fallback``, ``baseline`` kept when the winner is not ahead of it."""
    num_classes = len(archtrain.classes) + 1
    # 1. stage supernet
    stage_dir = out / STAGE_SUPERNET
    model = supernet_detector(config, space, num_classes)
    if config.weights_backbone is not None:
        report = supernet_of(model).inherit(config.weights_backbone)
        logger.info("stage supernet initialised from %s: %s", config.weights_backbone, report)
    _train(config, model, archtrain, config.stage_iterations, stage_dir, [stage_sampler(config, space, config.seed)], progress)
    _add_time(out, "stage_supernet_s", started)
    parts = config.stage_parts(space)
    if config.split_stage is not None:  # few-shot: one copy of the shared weights trained on each part
        t0 = time.time()
        shared = {k: v.clone() for k, v in model.state_dict().items()}
        for i, part in enumerate(parts):
            logger.info("stage supernet part %d of %d: C%d in %s, %d allocations", i + 1, len(parts), config.split_stage + 2,
                        part.choices[config.split_stage], len(part))
            model.load_state_dict(shared)
            seed = derive_seed(config.seed, SPLIT, i)
            _train(config, model, archtrain, config.split_iterations, _part_dir(stage_dir, i), [stage_sampler(config, part, seed)],
                   progress, seed=seed)
        _add_time(out, "stage_split_s", t0)

    # 2. stage search: each part's allocations scored with its weights
    t0 = time.time()
    scorer = Scorer(model, archtrain, archval, config.eval_batch_size, config.recal_batches, config.seed, config.device)
    stage_store: DetectionStore[list[Record]] = DetectionStore(out / "detections" / "stage")
    stage_log = out / "stage_search.jsonl"
    if config.split_stage is not None:
        macs_of = {tuple(b): int(m) for b, m in zip(space.allocations(), allocation_macs)}
        for i, part in enumerate(parts):
            _load_weights(model, _part_dir(stage_dir, i) / CHECKPOINT_NAME)
            stage_search(scorer, part, stage_log, macs=[macs_of[tuple(b)] for b in part.allocations()], progress=progress, store=stage_store)
    table = stage_search(scorer, space, stage_log, macs=allocation_macs, progress=progress, store=stage_store)  # the whole table
    _add_time(out, "stage_search_s", t0)
    logger.info("stage search: best allocation %s (AP %.4f)", table[0].blocks, table[0].metrics["AP"])
    evaluations = stage_evaluations([r.blocks for r in table], stage_store, archval, max_detections=scorer.max_detections)
    stage_conf = stage_confidence(
        [r.blocks for r in table], evaluations, baseline, resamples=config.bootstrap_resamples, seed=derive_seed(config.seed, CONFIDENCE),
    )
    _log_confidence(stage_conf, "stage search")
    stage_reliability = _reliability(evaluations, derive_seed(config.seed, CONFIDENCE))
    stage_fallback = config.stage_fallback and stage_conf is not None and stage_conf.reference == baseline and stage_conf.keeps_reference
    best_blocks = baseline if stage_fallback else table[0].blocks
    if stage_fallback:
        logger.warning("stage search: keeping the baseline allocation %s (docs/design.md#fallback)", best_blocks)
    return StageSearch(best=best_blocks, allocations=table, confidence=stage_conf, fallback=stage_fallback, archval=stage_reliability)


def _probe_stage_search(
    config: SearchConfig, space: StageSpace, allocation_macs: Sequence[int], baseline: list[int], archtrain: DetectionDataset,
    archval: DetectionDataset, out: Path, progress: bool,
) -> StageSearch:
    """The depth-fit stage ranking (docs/design.md#depth-fit): ``config.probes`` allocations spread over
    the space (farthest apart, from ``baseline`` or the space's first) each trained on archtrain on its
    own and evaluated on archval (cached in ``out/probes``, resumable), and every allocation scored by the
    linear depth model fitted on their AP."""
    t0 = time.time()
    allocations = space.allocations()
    probes = farthest_point(allocations, baseline if baseline in allocations else allocations[0], config.probes)
    make_jobs = job_factory(config, archtrain, archval, config.probe_iterations, [config.seed])
    jobs = [make_jobs((b, [1] * sum(b), 0.0, 0))[0] for b in probes]
    logger.info("depth-fit stage ranking: %d probe allocations trained on their own, %d iterations each", len(jobs), config.probe_iterations)
    metrics = train_in_order(jobs, StandaloneCache(out / PROBES), standalone_trainer(config, archtrain, archval), progress=progress)
    ap = [100 * m["AP"] for m in metrics]
    fit, predicted = depth_fit(probes, ap), linear_predictions(probes, ap, allocations)
    if fit is None or predicted is None:
        shown = ", ".join(f"{a:.2f}" for a in ap)
        raise ValueError(f"probes: expected AP that separates the stages' depths, got {shown}; train longer (probe_iterations) or more probes")
    order = sorted(range(len(allocations)), key=lambda i: (-predicted[i], allocations[i]))
    table = [ScoredAllocation(allocations[i], int(allocation_macs[i]), {"AP": predicted[i] / 100}) for i in order]
    macs_of = {tuple(b): int(m) for b, m in zip(allocations, allocation_macs)}
    measured = [ScoredAllocation(b, macs_of[tuple(b)], m) for b, m in zip(probes, metrics)]
    _add_time(out, "stage_probes_s", t0)
    logger.info("stage search (depth fit, R2 %.2f): best allocation %s (predicted AP %.4f)", fit.linear.r2, table[0].blocks, table[0].metrics["AP"])
    return StageSearch(best=table[0].blocks, allocations=table, probes=StageProbes(config.probe_iterations, config.seed, measured, fit))


def run_search(
    config: SearchConfig, dataset: DetectionDataset, out_dir: str | os.PathLike[str], *, resume: bool = True, progress: bool = True
) -> SearchResult:
    """Run (or continue) the hierarchical search of ``config`` on ``dataset``; write ``result.json`` and return
    its :class:`~crnas.search.result.SearchResult`."""
    config.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "config.json"
    current = json.loads(json.dumps(config.to_dict()))  # as it reads back from config.json (tuples as lists)
    if saved.is_file():
        # an older crnas's config.json lacks the settings added since: this run's values complete it, except
        # those that shape the trained weights, which it ran at their legacy values
        previous = {**current, **LEGACY_WEIGHT_SETTINGS, **json.loads(saved.read_text())}
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
    convention = config.macs_convention()
    counted = flops.count_many([space.architecture(b) for b in space.allocations()], config.macs_input, config.detector, **convention)
    allocation_macs = [int(m) for m in counted]

    baseline = Architecture.baseline(config.family).replace(width=config.width)
    stage_search_record = (
        _probe_stage_search(config, space, allocation_macs, baseline.blocks, archtrain, archval, out, progress)
        if config.stage_ranker == "depth-fit"
        else _supernet_stage_search(config, space, allocation_macs, baseline.blocks, archtrain, archval, out, progress, started)
    )
    best_blocks = stage_search_record.best

    # 3. operation supernet, from the stage supernet's weights (depth-fit: from its initialisation)
    t0 = time.time()
    op_dir = out / OP_SUPERNET
    model = supernet_detector(config, space, num_classes)
    if not (op_dir / CHECKPOINT_NAME).is_file():
        if config.stage_ranker == "supernet":
            _load_weights(model, stage_checkpoint(config, out, best_blocks))
        elif config.weights_backbone is not None:
            report = supernet_of(model).inherit(config.weights_backbone)
            logger.info("operation supernet initialised from %s: %s", config.weights_backbone, report)
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
    _add_time(out, "op_supernet_s", t0)

    # 4. dilation search
    t0 = time.time()
    scorer = Scorer(model, archtrain, archval, config.eval_batch_size, config.recal_batches, config.seed, config.device)
    if differentiable is not None:
        dilations = differentiable.architecture()
        metrics = scorer.score_candidates([dilations], len(dilations), joint=False)[0]
        dilation_search = DilationSearch(
            "differentiable", dilations, metrics, choices=list(differentiable.dilations), probabilities=differentiable.probabilities().tolist()
        )
    else:
        step_store: DetectionStore[list[list[Record]]] = DetectionStore(out / "detections" / "dilation")
        dilation_search = greedy_dilation_search(
            scorer, out / "dilation_search.jsonl", k=config.beam, joint=config.joint, common_random=config.common_random, progress=progress,
            store=step_store,
        )
        for step in dilation_search.steps:
            ranked = sorted(step.candidates, key=lambda c: (-c.metrics["AP"], c.dilations))
            step.confidence = step_confidence(
                [c.dilations for c in step.candidates], [c.dilations for c in ranked[:2]], step_store.load(step_key(step.step)),
                archval, resamples=config.bootstrap_resamples, seed=derive_seed(config.seed, CONFIDENCE, step.step + 1),
                max_detections=scorer.max_detections,
            )
        last = dilation_search.steps[-1].confidence if dilation_search.steps else None
        _log_confidence(last, "dilation search (last step)", baseline_name="the runner-up")
    _add_time(out, "dilation_search_s", t0)

    # 5. final check against all-dilation-1
    t0 = time.time()
    if config.dilation_fallback:
        final = run_final_check(
            config, scorer, dilation_search, out, DetectionStore(out / "detections" / "dilation"), checkpoints=out / "final_check",
        )
        logger.info("%s", final.confidence.summary("dilation search (pick vs all-dilation-1)"))
        if final.fallback:
            logger.warning("dilation search: the pick is not significantly better than all-dilation-1; keeping all-dilation-1 "
                           "(docs/design.md#fallback)")
        dilation_search.final = final
        dilation_search.dilations = final.kept
        dilation_search.metrics = next(c.metrics for c in final.candidates if c.dilations == final.kept)
    _add_time(out, "final_check_s", t0)

    found = space.architecture(best_blocks, dilation_search.dilations)
    macs = lambda a: flops.count(a, config.macs_input, config.detector, **convention).macs  # noqa: E731
    result = SearchResult(
        architecture=found,
        baseline=baseline,
        macs=SearchMacs(
            found=macs(found), baseline=macs(baseline), input_size=list(config.macs_input), detector=config.detector,
            convention={"description": "conv + linear MACs, whole detector without RoIAlign (docs/flops.md)", **convention},
        ),
        stage_search=stage_search_record,
        dilation_search=dilation_search,
        space=SearchedSpace(family=space.family, choices=space.choices, budget=space.budget, width=space.width, size=len(space)),
        data=SearchData(
            spec=dict(config.data), images=len(dataset), archtrain=len(archtrain), archval=len(archval), classes=list(dataset.classes),
            fingerprint=data_fingerprint(dataset),
        ),
        config=SearchConfig.from_dict(current),
        seeds={"seed": config.seed, "supernet_init": derive_seed(config.seed, INIT)},
        versions=_versions(),
    )
    if distributed.is_main():
        result.save(out / "result.json")
    return result
