"""The hierarchical CR-NAS search: supernets, scoring, stage and dilation search, the driver."""

from crnas.search.driver import PRESETS, SearchConfig, preset, run_search
from crnas.search.procedures import DifferentiableSearch, PathSampler, StageSampler, greedy_dilation_search, stage_search
from crnas.search.scoring import Scorer, recalibrate_bn
from crnas.search.supernet import SearchableConv2d, SuperNet, build_supernet_detector, extract_detector, supernet_of

__all__ = [
    "SearchConfig",
    "PRESETS",
    "preset",
    "run_search",
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
