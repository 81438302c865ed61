"""``result.json``, the record of a finished search (:class:`SearchResult`, written by
:func:`crnas.search.driver.run_search`), and its parts.

- ``architecture`` and ``baseline``: the found and the baseline :class:`~crnas.arch.Architecture`;
- ``macs`` (:class:`SearchMacs`): both counted with the search's detector, input size and convention;
- ``stage_search`` (:class:`StageSearch`): the chosen allocation, every scored allocation
  (:class:`ScoredAllocation`, best first), the winner's :class:`~crnas.search.confidence.Confidence`
  and whether the baseline allocation was kept instead (``fallback``, docs/design.md#fallback); for the
  depth-fit ranking, the probes it was fitted on (:class:`StageProbes`, docs/design.md#depth-fit);
- ``dilation_search`` (:class:`DilationSearch`): the method, the found dilations and, for the greedy
  beam, every step (:class:`GreedyStep`: its scored :class:`Candidate` prefixes, the beam, the step's
  confidence), or, for the differentiable method, the final probabilities per block; and the
  :class:`FinalCheck` of the finalists against all-dilation-1;
- ``space`` (:class:`SearchedSpace`), ``data`` (:class:`SearchData`: spec, split sizes, classes,
  fingerprint), ``config`` (:class:`~crnas.search.config.SearchConfig`), ``seeds`` and ``versions``.

AP values are fractions in [0, 1]. See docs/audit.md for the confidence records. :meth:`SearchResult.to_dict`
gives exactly the JSON the driver writes; :func:`load_result` reads a file, a directory or a dict.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from crnas.arch import Architecture
from crnas.jsonfile import read_record, write_json
from crnas.search.confidence import Confidence, SplitHalf
from crnas.search.config import SearchConfig
from crnas.search.depth import DepthFit, DepthModel

__all__ = [
    "RESULT_FILE", "SearchResult", "SearchMacs", "ScoredAllocation", "StageProbes", "StageSearch", "Candidate", "GreedyStep", "FinalCheck",
    "DilationSearch",
    "SearchedSpace", "SearchData", "ResultLike", "load_result",
]

RESULT_FILE = "result.json"


def _confidence(d: Mapping[str, Any] | None) -> Confidence | None:
    return None if d is None else Confidence.from_dict(dict(d))


@dataclass
class SearchMacs:
    """MACs of the found and the baseline architecture, counted the same way."""

    found: int
    baseline: int
    #: (height, width) of the counted input.
    input_size: list[int]
    detector: str
    #: ``description`` and the head sizes (``fpn_channels``, ``representation_size``) the count used.
    convention: dict[str, Any]

    def convention_kwargs(self) -> dict[str, Any]:
        """The convention as keyword arguments of :func:`crnas.flops.count` (without the description)."""
        return {k: v for k, v in self.convention.items() if k != "description"}


@dataclass
class ScoredAllocation:
    """One row of the stage search's table: blocks per stage, MACs, archval COCO metrics (``AP``, ``AP50``, ...)."""

    blocks: list[int]
    macs: int | None
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"blocks": self.blocks, "macs": self.macs, **self.metrics}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScoredAllocation:
        return cls(list(d["blocks"]), d["macs"], {k: v for k, v in d.items() if k not in ("blocks", "macs")})


@dataclass
class StageProbes:
    """The depth-fit stage ranking's evidence (docs/design.md#depth-fit): the probe allocations, each
    trained on its own for ``iterations`` (seed ``seed``) and evaluated on archval (``metrics``), and the
    :class:`~crnas.search.depth.DepthFit` of their AP; its linear model scored the stage table."""

    iterations: int
    seed: int
    allocations: list[ScoredAllocation]
    fit: DepthFit

    def to_dict(self) -> dict[str, Any]:
        return {"iterations": self.iterations, "seed": self.seed, "allocations": [a.to_dict() for a in self.allocations], "fit": asdict(self.fit)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StageProbes:
        fit = d["fit"]
        return cls(
            int(d["iterations"]), int(d["seed"]), [ScoredAllocation.from_dict(a) for a in d["allocations"]],
            DepthFit(DepthModel(**fit["linear"]), DepthModel(**fit["log"]), bool(fit["last_stage_is_reference"])),
        )


@dataclass
class StageSearch:
    """The stage search: the chosen allocation (``best``), every scored allocation (best first), how sure
    the winner's lead over the baseline allocation is (``None`` for a search by an older crnas or without
    kept detections), ``fallback``: whether ``best`` is the baseline allocation, kept because the
    winner could not be told apart from it (docs/design.md#fallback), and ``archval``: how much of the
    table's spread another archval of the same size would reproduce (split-half reliability,
    docs/audit.md; ``None`` where it cannot be measured or for a search by an older crnas). With the
    depth-fit ranking the table's ``AP`` is the fit's prediction, ``probes`` the runs behind it, and there
    is no supernet score to bootstrap (``confidence`` and ``archval`` are ``None``)."""

    best: list[int]
    allocations: list[ScoredAllocation]
    confidence: Confidence | None = None
    fallback: bool = False
    archval: SplitHalf | None = None
    probes: StageProbes | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "best": self.best, "allocations": [a.to_dict() for a in self.allocations],
            "confidence": None if self.confidence is None else self.confidence.to_dict(), "fallback": self.fallback,
            "archval": None if self.archval is None else self.archval.to_dict(),
            "probes": None if self.probes is None else self.probes.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StageSearch:
        archval, probes = d.get("archval"), d.get("probes")
        return cls(
            list(d["best"]), [ScoredAllocation.from_dict(a) for a in d["allocations"]], _confidence(d.get("confidence")),
            bool(d.get("fallback", False)), None if archval is None else SplitHalf.from_dict(archval),
            None if probes is None else StageProbes.from_dict(probes),
        )


@dataclass
class Candidate:
    """A dilation prefix scored in one greedy step and its archval COCO metrics."""

    dilations: list[int]
    metrics: dict[str, float]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Candidate:
        return cls(list(d["dilations"]), dict(d["metrics"]))


@dataclass
class GreedyStep:
    """One step (block) of the greedy dilation search: every candidate scored, the top-K beam (best
    first), and how sure the step's winner is against the runner-up."""

    step: int
    candidates: list[Candidate]
    beam: list[list[int]]
    confidence: Confidence | None = None

    def beam_aps(self) -> list[float]:
        """AP of each beam entry, in beam order."""
        scores = {tuple(c.dilations): c.metrics["AP"] for c in self.candidates}
        return [scores[tuple(b)] for b in self.beam]

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step, "candidates": [asdict(c) for c in self.candidates], "beam": self.beam,
            "confidence": None if self.confidence is None else self.confidence.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GreedyStep:
        candidates = [Candidate.from_dict(c) for c in d["candidates"]]
        return cls(int(d["step"]), candidates, [list(b) for b in d["beam"]], _confidence(d.get("confidence")))


@dataclass
class FinalCheck:
    """The dilation search's finalists (the final beam, or the differentiable pick) and all-dilation-1,
    each scored by the supernet with its own paths in every block (no random completion); with
    ``SearchConfig.finetune_check``, the pick and all-dilation-1 scored again after each was fine-tuned
    on its own path (``finetuned``); the pick against all-dilation-1 (``confidence``, on the fine-tuned
    scores when there are any); ``fallback``: whether all-dilation-1 was kept because the pick could not
    be told apart from it (docs/design.md#fallback)."""

    candidates: list[Candidate]
    confidence: Confidence
    fallback: bool
    finetuned: list[Candidate] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidates": [asdict(c) for c in self.candidates], "confidence": self.confidence.to_dict(), "fallback": self.fallback,
            "finetuned": None if self.finetuned is None else [asdict(c) for c in self.finetuned],
        }

    @property
    def kept(self) -> list[int]:
        """The dilations the search keeps: all-dilation-1 after a fallback, else the pick."""
        return self.confidence.reference if self.fallback else self.confidence.winner

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FinalCheck:
        finetuned = d.get("finetuned")
        return cls(
            [Candidate.from_dict(c) for c in d["candidates"]], Confidence.from_dict(d["confidence"]), bool(d["fallback"]),
            None if finetuned is None else [Candidate.from_dict(c) for c in finetuned],
        )


@dataclass
class DilationSearch:
    """The dilation search over the chosen allocation's blocks.

    ``method`` ``"greedy"``: ``steps``, the beam width ``k`` and the scoring mode (``joint``,
    ``common_random``). ``"differentiable"``: ``probabilities`` (per block, over ``choices``, which a
    result by an older crnas does not list). ``final``: the check against all-dilation-1 behind
    ``dilations`` (``None`` when the search ran without it or by an older crnas).
    """

    method: str
    dilations: list[int]
    metrics: dict[str, float]
    steps: list[GreedyStep] = field(default_factory=list)
    k: int | None = None
    joint: bool | None = None
    common_random: bool | None = None
    choices: list[int] | None = None
    probabilities: list[list[float]] | None = None
    final: FinalCheck | None = None

    def to_dict(self) -> dict[str, Any]:
        head = {"method": self.method, "dilations": self.dilations, "metrics": self.metrics}
        tail = {"final": None if self.final is None else self.final.to_dict()}
        if self.method == "greedy":
            steps = [s.to_dict() for s in self.steps]
            return {**head, "steps": steps, "k": self.k, "joint": self.joint, "common_random": self.common_random, **tail}
        return {**head, **({} if self.choices is None else {"choices": self.choices}), "probabilities": self.probabilities, **tail}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DilationSearch:
        final = None if d.get("final") is None else FinalCheck.from_dict(d["final"])
        if d["method"] == "greedy":
            return cls(
                "greedy", list(d["dilations"]), dict(d["metrics"]), steps=[GreedyStep.from_dict(s) for s in d["steps"]], k=d["k"],
                joint=d["joint"], common_random=d["common_random"], final=final,
            )
        if d["method"] == "differentiable":
            choices = d.get("choices")
            return cls(
                "differentiable", list(d["dilations"]), dict(d["metrics"]), choices=None if choices is None else list(choices),
                probabilities=[list(p) for p in d["probabilities"]], final=final,
            )
        raise ValueError(f"dilation_search.method: expected 'greedy' or 'differentiable', got {d['method']!r}")


@dataclass
class SearchedSpace:
    """The stage space searched (:class:`~crnas.arch.StageSpace`'s family, choices, budget and width) and its size."""

    family: str
    choices: list[list[int]]
    budget: dict[str, Any]
    width: float
    size: int


@dataclass
class SearchData:
    """The data searched on: its spec (``{"kind": ...}``, :mod:`crnas.data.spec`), the split sizes, the
    classes and a SHA-256 fingerprint of the ground truth (:func:`crnas.search.standalone.data_fingerprint`)."""

    spec: dict[str, Any]
    images: int
    archtrain: int
    archval: int
    classes: list[str]
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.spec, **{k: v for k, v in asdict(self).items() if k != "spec"}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchData:
        known = ("images", "archtrain", "archval", "classes", "fingerprint")
        return cls({k: v for k, v in d.items() if k not in known}, **{k: d[k] for k in known})


@dataclass
class SearchResult:
    """``result.json`` of a ``crnas search`` directory."""

    architecture: Architecture
    baseline: Architecture
    macs: SearchMacs
    stage_search: StageSearch
    dilation_search: DilationSearch
    space: SearchedSpace
    data: SearchData
    config: SearchConfig
    seeds: dict[str, int]
    versions: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture.to_dict(),
            "baseline": self.baseline.to_dict(),
            "macs": asdict(self.macs),
            "stage_search": self.stage_search.to_dict(),
            "dilation_search": self.dilation_search.to_dict(),
            "space": asdict(self.space),
            "data": self.data.to_dict(),
            "config": self.config.to_dict(),
            "seeds": self.seeds,
            "versions": self.versions,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchResult:
        return cls(
            architecture=Architecture.from_dict(dict(d["architecture"])),
            baseline=Architecture.from_dict(dict(d["baseline"])),
            macs=SearchMacs(**d["macs"]),
            stage_search=StageSearch.from_dict(d["stage_search"]),
            dilation_search=DilationSearch.from_dict(d["dilation_search"]),
            space=SearchedSpace(**d["space"]),
            data=SearchData.from_dict(d["data"]),
            config=SearchConfig.from_dict(d["config"]),
            seeds=dict(d["seeds"]),
            versions=dict(d["versions"]),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``result.json`` (``path`` is the file or its directory) atomically; returns the file."""
        path = Path(path)
        path = path / RESULT_FILE if path.is_dir() else path
        write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SearchResult:
        """The result in ``path``: a ``result.json`` or the search directory holding one."""
        file = Path(path)
        file = file / RESULT_FILE if file.is_dir() else file
        if not file.is_file():
            raise FileNotFoundError(f"result: expected a result.json or a search directory holding one, got {str(file)!r}")
        return read_record(file, "a search result", cls.from_dict)


#: What names a search result: the record, a ``result.json`` or its search directory, or the JSON as a dict.
ResultLike: TypeAlias = "SearchResult | str | os.PathLike[str] | Mapping[str, Any]"


def load_result(source: ResultLike) -> SearchResult:
    """The :class:`SearchResult` that ``source`` names (see :data:`ResultLike`)."""
    if isinstance(source, SearchResult):
        return source
    if isinstance(source, Mapping):
        try:
            return SearchResult.from_dict(source)
        except (KeyError, TypeError) as err:
            raise ValueError(f"result: expected a search result, got {type(err).__name__}: {err}") from None
    return SearchResult.load(source)
