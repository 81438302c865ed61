"""Analysis: effective receptive fields (the paper's Fig. 1), figures and tables of architectures
and search results.

Figures are matplotlib ``Figure`` objects on their own Agg canvas (no ``pyplot`` state, no backend
switch); every ``plot_*`` function takes ``path=`` to write a PNG as well.
"""

from crnas.analysis.architecture_figures import plot_allocation, plot_macs
from crnas.analysis.checkpoint import load_backbone
from crnas.analysis.compare import architecture_table, as_architectures, stage_string
from crnas.analysis.erf import ERFResult, erf, erf_levels, erf_table, feature_maps
from crnas.analysis.erf_figure import plot_erf
from crnas.analysis.results import dilation_steps_table, load_result, result_architectures, stage_table
from crnas.analysis.search_figures import plot_dilation_search, plot_search, plot_stage_search

__all__ = [
    "ERFResult",
    "erf",
    "erf_levels",
    "erf_table",
    "feature_maps",
    "load_backbone",
    "plot_erf",
    "plot_allocation",
    "plot_macs",
    "plot_stage_search",
    "plot_dilation_search",
    "plot_search",
    "load_result",
    "result_architectures",
    "stage_table",
    "dilation_steps_table",
    "architecture_table",
    "as_architectures",
    "stage_string",
]
