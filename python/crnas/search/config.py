"""What determines a search: :class:`SearchConfig` (saved in ``config.json`` and ``result.json``) and the
presets it starts from (docs/design.md#presets)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from crnas.arch import DETECTORS, MACS_INPUT_SIZE, SAMPLINGS, StageSpace
from crnas.detection import backbone_training, detection_limit

__all__ = ["SearchConfig", "PRESETS", "preset", "METHODS", "STAGE_RANKERS"]

METHODS = ("greedy", "differentiable")
#: How the stage search ranks the allocations (docs/design.md#depth-fit).
STAGE_RANKERS = ("supernet", "depth-fit")

#: Settings that shape a search's trained weights, as a ``config.json`` written before they existed ran
#: them: resuming such a search must not take this run's values instead (older crnas trained BatchNorm).
LEGACY_WEIGHT_SETTINGS: dict[str, Any] = {
    "norm": "batch", "split_stage": None, "stage_sandwich": False, "stage_distill": 0.0, "normalize_outputs": False,
    "stage_ranker": "supernet",
}


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
    #: Keep all-dilation-1 unless the dilation search's pick beats it significantly in the final check
    #: (docs/design.md#fallback).
    dilation_fallback: bool = True
    #: Keep the baseline allocation unless the stage search's winner beats it significantly on archval
    #: (off: in docs/results.md#fallback it would have kept the baseline where the winner trained better).
    stage_fallback: bool = False
    #: Iterations the final check fine-tunes the dilation pick and all-dilation-1 each (from the operation
    #: supernet's weights, on archtrain, each on its own path) before comparing them; 0 compares the
    #: supernet's own scores, which favoured dilated paths in docs/results.md#fallback.
    finetune_check: int = 0
    #: Score the candidates of a greedy step together in one pass (per-sample paths through the fused
    #: op, shared BN recalibration) instead of one by one. Off for the CPU presets, where one by one
    #: measured faster (benches/bench_search.py); on for ``paper`` (GPUs, large batches).
    joint: bool = True
    #: Same random completions for every candidate of a step on a mini-batch.
    common_random: bool = True
    #: Op-supernet training samples one path per image (the batch grouped by dilation) instead of per batch.
    per_sample_paths: bool = True
    #: How the stage supernet draws its allocation per step (``crnas.arch.SAMPLINGS``): ``uniform`` over the
    #: feasible allocations (the paper's), ``balanced`` per stage depth, or ``independent`` (each stage's
    #: depth uniform, the budget not kept while training) (docs/design.md#stage-sampling).
    stage_sampling: str = "uniform"
    #: The sandwich rule: every stage-supernet step also trains the deepest and the shallowest
    #: sub-networks (every stage at its deepest / shallowest feasible depth) on its batch, one optimizer
    #: step on the three's mean gradient (docs/design.md#sandwich); about 3x the step's cost.
    stage_sandwich: bool = False
    #: In-place distillation (with ``stage_sandwich``): the weight of the squared difference between a
    #: sub-network's FPN features and the deepest's in the same step (relative to the deepest's square),
    #: added to the shallowest's and the drawn allocation's losses; 0 turns it off.
    stage_distill: float = 0.0
    #: The stage supernet divides every stage's output, on its way to the FPN, by its running root mean
    #: square at that stage's depth, so that the shared FPN sees every depth at one scale
    #: (docs/design.md#normalized-outputs); the final model folds the scales into the FPN.
    normalize_outputs: bool = False
    #: How the stage search ranks the allocations (``STAGE_RANKERS``, docs/design.md#depth-fit): ``supernet``
    #: (the paper's: one stage supernet trained on them all, each allocation scored with its weights) or
    #: ``depth-fit`` (``probes`` allocations spread over the space each trained on its own for
    #: ``probe_iterations`` and evaluated on archval; every allocation scored by the line through the
    #: probes' stage depths; the stage-supernet settings are then unused and the operation supernet
    #: starts from its initialisation).
    stage_ranker: str = "supernet"
    probes: int = 12
    probe_iterations: int = 1000
    #: Initialise the stage supernet (and so the operation supernet) from these backbone weights —
    #: ``"torchvision"`` (ImageNet) or a state-dict file of the family's network — by the block mapping of
    #: ``crnas.models.weights.inherit``, as DetNAS does; the audit's stand-alone runs start from them too.
    weights_backbone: str | None = None
    #: Normalisation of the backbones trained from scratch — the supernet's and the stand-alone runs'
    #: (``crnas.detection.NORMS``): ``batch`` (torchvision's) or ``group`` (docs/design.md#norm).
    norm: str = "batch"
    #: Few-shot splitting (docs/design.md#few-shot): after the shared stage supernet, ``split_groups``
    #: copies of it each train ``split_iterations`` more on the allocations whose depth of stage
    #: ``split_stage`` (0 = C2) falls in the copy's range (:meth:`crnas.arch.StageSpace.split`), and each
    #: allocation is scored with its copy. ``None``: one supernet for every allocation (the paper's).
    split_stage: int | None = None
    split_groups: int = 3
    split_iterations: int = 0
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
        if self.stage_ranker not in STAGE_RANKERS:
            raise ValueError(f"stage_ranker: expected one of {', '.join(STAGE_RANKERS)}, got {self.stage_ranker!r}")
        if self.stage_ranker == "depth-fit":
            if self.probe_iterations < 1:
                raise ValueError(f"probe_iterations: expected an int >= 1, got {self.probe_iterations}")
            space = self.space()
            stages = len(space.choices)
            if not stages + 3 <= self.probes <= len(space):
                raise ValueError(
                    f"probes: expected {stages + 3} (a line through {stages} stage depths and two more) to {len(space)} "
                    f"(the space's allocations), got {self.probes}"
                )
            if self.split_stage is not None:
                raise ValueError(f"split_stage: expected None with stage_ranker depth-fit (no stage supernet to split), got {self.split_stage}")
        if self.finetune_check < 0:
            raise ValueError(f"finetune_check: expected an int >= 0, got {self.finetune_check}")
        for flag in ("joint", "common_random", "per_sample_paths", "dilation_fallback", "stage_fallback", "normalize_outputs"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag}: expected true or false, got {getattr(self, flag)!r}")
        detection_limit(self.detector, self.max_detections)  # raises on a bad cap
        if self.stage_sampling not in SAMPLINGS:
            raise ValueError(f"stage_sampling: expected one of {', '.join(SAMPLINGS)}, got {self.stage_sampling!r}")
        if not isinstance(self.stage_sandwich, bool):
            raise ValueError(f"stage_sandwich: expected true or false, got {self.stage_sandwich!r}")
        if not (isinstance(self.stage_distill, (int, float)) and 0 <= self.stage_distill < float("inf")):
            raise ValueError(f"stage_distill: expected a finite weight >= 0, got {self.stage_distill!r}")
        if self.stage_distill and not self.stage_sandwich:
            raise ValueError(f"stage_distill: expected 0 without stage_sandwich (it distils from the sandwich's deepest), got {self.stage_distill}")
        if self.split_stage is not None:
            if self.split_stage not in range(4):
                raise ValueError(f"split_stage: expected a stage index 0..3 (C2..C5) or None, got {self.split_stage!r}")
            if self.split_iterations < 1:
                raise ValueError(f"split_iterations: expected an int >= 1 with split_stage, got {self.split_iterations}")
        backbone_training(self.weights_backbone is not None, self.norm)  # raises on a bad norm or one a pretrained backbone cannot take
        if self.split_stage is not None:
            self.stage_parts()  # raises on more groups than the stage has feasible depths: before any training, not after

    def space(self) -> StageSpace:
        """The stage space this configuration searches."""
        paper = StageSpace.paper(self.family)
        choices = self.choices or paper.choices
        if self.budget is None and self.flops_tolerance is None:
            if paper.budget["type"] == "blocks":
                return StageSpace(self.family, choices, budget=paper.budget["total"], width=self.width)
            return StageSpace(self.family, choices, flops_tolerance=paper.budget["tolerance"], width=self.width)
        return StageSpace(self.family, choices, budget=self.budget, flops_tolerance=self.flops_tolerance, width=self.width)

    def stage_parts(self, space: StageSpace | None = None) -> list[StageSpace]:
        """The stage supernet's parts: ``space`` (default :meth:`space`) split by ``split_stage``'s depth
        into ``split_groups`` sub-spaces, or ``[space]`` without a split."""
        space = self.space() if space is None else space
        return [space] if self.split_stage is None else space.split(self.split_stage, self.split_groups)

    def macs_convention(self) -> dict[str, int]:
        """The head sizes every MACs figure of this search is counted with (keywords of
        :func:`crnas.flops.count`, beside ``macs_input`` and ``detector``)."""
        return {"fpn_channels": self.fpn_channels, "representation_size": self.representation_size}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["macs_input"] = list(self.macs_input)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchConfig:
        d = dict(d)
        d["macs_input"] = tuple(d.get("macs_input", MACS_INPUT_SIZE))
        d.setdefault("dilation_fallback", False)  # a configuration written before the final check existed ran without it
        return cls(**d)


#: Heads sized for small images and CPUs (torchvision's defaults sample 512 RoIs and keep 2000 proposals).
_SMALL_HEADS = dict(
    rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300, rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=150,
    box_batch_size_per_image=128,
)

#: Presets: ``tiny`` (tests; ``crnas search --dry-run`` estimates the time), ``demo`` (``make demo``, under 10 minutes),
#: ``quality`` (the search recipe measured in docs/results.md#quality-depth-fit, on CPUs), ``paper`` (the paper's detector settings, for
#: GPUs; docs/design.md#presets). They set width, image size, schedule lengths and batch sizes; the family, budget, data
#: and method come from the user.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        width=0.125, min_size=96, max_size=128, fpn_channels=32, representation_size=64, detector_kwargs=_SMALL_HEADS, max_detections=50,
        batch_size=4, lr_per_image=0.0025, lr_warmup=10, stage_iterations=30, op_iterations=30, checkpoint_every=10,
        recal_batches=2, eval_batch_size=4, val_fraction=0.2, bootstrap_resamples=200, finetune_check=3,
        data=dict(kind="synthetic", num_images=40, image_size=128),
    ),
    "demo": dict(
        width=0.25, min_size=192, max_size=256, fpn_channels=64, representation_size=256, detector_kwargs=_SMALL_HEADS, max_detections=50,
        batch_size=4, lr_per_image=0.0025, lr_warmup=50, stage_iterations=400, op_iterations=200, checkpoint_every=50,
        recal_batches=2, eval_batch_size=8, val_fraction=0.1, joint=False, bootstrap_resamples=300, finetune_check=100,
        data=dict(kind="synthetic", num_images=320, image_size=256),
    ),
    # The demo's detector and data with GroupNorm backbones (docs/results.md#norm), a 160-image archval, the stage
    # search by the depth fit of 12 probes of 1,000 iterations each (docs/results.md#depth-fit-search) and a final
    # check fine-tuned 400 iterations (docs/results.md#fallback); the whole preset measured end to end in
    # docs/results.md#quality-depth-fit. ``--stage-ranker supernet`` gives the supernet recipe measured before it:
    # 4,000 balanced stage-supernet iterations (docs/results.md#few-shot, #quality).
    "quality": dict(
        width=0.25, min_size=192, max_size=256, fpn_channels=64, representation_size=256, detector_kwargs=_SMALL_HEADS, max_detections=50,
        batch_size=4, lr_per_image=0.0025, lr_warmup=50, stage_iterations=4000, op_iterations=1000, checkpoint_every=100,
        recal_batches=2, eval_batch_size=8, val_fraction=0.357, joint=False, bootstrap_resamples=300, stage_sampling="balanced", finetune_check=400,
        norm="group", stage_ranker="depth-fit", probes=12, probe_iterations=1000, data=dict(kind="synthetic", num_images=448, image_size=256),
    ),
    # The paper's detector settings, for GPUs. Its stage ranking stays the paper's stage supernet: the depth fit
    # ranked better at CPU scale (docs/results.md#depth-fit-search) but costs ``probes`` trainings, each on the
    # schedule the found detector retrains on (there 1,000 iterations; here the 1x schedule), so
    # ``--stage-ranker depth-fit`` is a user's choice of 12 full trainings against one supernet's.
    "paper": dict(
        width=1.0, min_size=800, max_size=1333, batch_size=16, lr_per_image=0.00125, stage_iterations=90_000,
        op_iterations=90_000, checkpoint_every=1000, recal_batches=50, eval_batch_size=8, val_fraction=0.042,
        probe_iterations=90_000, device="cuda", num_workers=4,
    ),
}


def preset(name: str, **overrides: Any) -> SearchConfig:
    """The configuration of a preset with ``overrides`` applied."""
    if name not in PRESETS:
        raise ValueError(f"preset: expected one of {', '.join(PRESETS)}, got {name!r}")
    values = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}, "preset": name}
    if values.get("weights_backbone") is not None and overrides.get("norm") is None:
        values["norm"] = "batch"  # a preset's GroupNorm is for backbones trained from scratch; pretrained ones keep their BatchNorm
    defaults, data = PRESETS[name].get("data"), overrides.get("data")
    # The preset's data settings complete a partial spec of the same kind, never another kind's.
    if defaults and data and data.get("kind", defaults["kind"]) == defaults["kind"]:
        values["data"] = {**defaults, **data}
    config = SearchConfig(**values)
    if config.data.get("kind") == "synthetic":  # COCO's size mix at the detector's input (crnas.data.synthetic)
        config.data = {"sizes": "coco", "size_reference": min(config.min_size, config.max_size), **config.data}
    config.validate()
    return config
