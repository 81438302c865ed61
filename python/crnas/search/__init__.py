"""The hierarchical CR-NAS search: supernets, scoring, stage and dilation search, the driver, the result."""

from crnas.search.algorithms import greedy_dilation_search, stage_search
from crnas.search.callbacks import DifferentiableSearch, PathSampler, StageSampler
from crnas.search.config import PRESETS, SearchConfig, preset
from crnas.search.driver import run_search
from crnas.search.result import SearchResult, load_result
from crnas.search.scoring import Scorer, recalibrate_bn
from crnas.search.supernet import SearchableConv2d, SuperNet, build_supernet_detector, extract_detector, supernet_of

__all__ = [
    "SearchConfig",
    "PRESETS",
    "preset",
    "run_search",
    "SearchResult",
    "load_result",
    "SuperNet",
    "SearchableConv2d",
    "build_supernet_detector",
    "extract_detector",
    "supernet_of",
    "Scorer",
    "recalibrate_bn",
    "StageSampler",
    "PathSampler",
    "DifferentiableSearch",
    "stage_search",
    "greedy_dilation_search",
]
