"""Type stubs of the native core ``crnas._core`` (checked against the binary by `make lint`: mypy.stubtest)."""

from typing import Any, final

import numpy as np
import numpy.typing as npt
import torch

__torch_version__: str
FAMILIES: tuple[str, ...]
PAPER_ARCHITECTURES: tuple[str, ...]
DILATIONS: tuple[int, ...]
DETECTORS: tuple[str, ...]
CONVENTION: dict[str, Any]
MACS_INPUT_SIZE: tuple[int, int]
SAMPLINGS: tuple[str, ...]

__all__ = [
    "__torch_version__",
    "FAMILIES",
    "PAPER_ARCHITECTURES",
    "DILATIONS",
    "DETECTORS",
    "CONVENTION",
    "MACS_INPUT_SIZE",
    "SAMPLINGS",
    "Architecture",
    "StageSpace",
    "FlopsReport",
    "mdconv_forward",
    "mdconv_backward",
    "flops_count",
    "flops_count_many",
    "sample_paths",
]

@final
class Architecture:
    """A CR-NAS backbone: family, blocks per stage [C2, C3, C4, C5], one dilation per block, width."""

    def __new__(cls, family: str, blocks: list[int], dilations: list[int] | None = None, width: float | None = None) -> Architecture: ...
    @classmethod
    def baseline(cls, family: str) -> Architecture: ...
    @classmethod
    def paper(cls, name: str) -> Architecture: ...
    @classmethod
    def from_json(cls, text: str) -> Architecture: ...
    def to_json(self) -> str: ...
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Architecture: ...
    def to_dict(self) -> dict[str, Any]: ...
    def replace(self, *, blocks: list[int] | None = None, dilations: list[int] | None = None, width: float | None = None) -> Architecture: ...
    @property
    def family(self) -> str: ...
    @property
    def blocks(self) -> list[int]: ...
    @property
    def dilations(self) -> list[int]: ...
    @property
    def width(self) -> float: ...
    @property
    def num_blocks(self) -> int: ...
    @property
    def stage_dilations(self) -> list[list[int]]: ...
    def layout(self) -> dict[str, Any]: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[Any, tuple[str]]: ...

@final
class FlopsReport:
    """Per-layer, per-part and total MACs and parameters."""

    @property
    def macs(self) -> int: ...
    @property
    def params(self) -> int: ...
    @property
    def by_stage(self) -> dict[str, int]: ...
    @property
    def params_by_stage(self) -> dict[str, int]: ...
    @property
    def layers(self) -> list[dict[str, Any]]: ...
    @property
    def input_size(self) -> tuple[int, int]: ...
    @property
    def detector(self) -> str | None: ...
    @property
    def convention(self) -> dict[str, Any]: ...
    def table(self, layers: bool = False) -> str: ...

@final
class StageSpace:
    """Block counts per stage drawn from per-stage choice sets under a budget."""

    def __new__(
        cls,
        family: str,
        choices: list[list[int]],
        *,
        budget: int | None = None,
        flops_tolerance: float | None = None,
        input_size: tuple[int, int] | None = None,
        width: float = 1.0,
    ) -> StageSpace: ...
    @classmethod
    def paper(cls, family: str) -> StageSpace: ...
    @property
    def family(self) -> str: ...
    @property
    def choices(self) -> list[list[int]]: ...
    @property
    def width(self) -> float: ...
    @property
    def budget(self) -> dict[str, Any]: ...
    def __len__(self) -> int: ...
    def __contains__(self, blocks: list[int], /) -> bool: ...
    def allocations(self) -> list[list[int]]: ...
    def sample(self, k: int, *, seed: int = 0, sampling: str = "uniform") -> list[list[int]]: ...
    def weights(self, sampling: str = "uniform") -> list[float]: ...
    def architecture(self, blocks: list[int], dilations: list[int] | None = None) -> Architecture: ...
    def joint_size(self) -> int: ...
    def sample_architectures(self, k: int, *, seed: int = 0) -> list[Architecture]: ...

def mdconv_forward(
    input: torch.Tensor,
    weight: torch.Tensor,
    mix: torch.Tensor,
    bias: torch.Tensor | None,
    dilations: list[int],
    stride: int,
    groups: int,
    backend: str = "auto",
) -> torch.Tensor: ...
def mdconv_backward(
    grad: torch.Tensor,
    input: torch.Tensor,
    weight: torch.Tensor,
    mix: torch.Tensor,
    dilations: list[int],
    stride: int,
    groups: int,
    output_mask: list[bool],
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...
def flops_count(
    arch: Architecture, input_size: tuple[int, int], detector_name: str | None = None, convention_args: dict[str, Any] | None = None
) -> FlopsReport: ...
def flops_count_many(
    archs: list[Architecture],
    input_size: tuple[int, int],
    detector_name: str | None = None,
    convention_args: dict[str, Any] | None = None,
) -> npt.NDArray[np.uint64]: ...
def sample_paths(
    num_blocks: int, batch_size: int, num_choices: int, seed: int, logits: torch.Tensor | None, device: str
) -> torch.Tensor: ...
