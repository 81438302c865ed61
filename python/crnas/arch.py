"""The core types of crnas and the constants they carry, all owned by the native core.

- :class:`Architecture` (a backbone: family, blocks per stage, dilations, width) and
  :class:`StageSpace` (block allocations under a budget): the native classes themselves.
- :data:`ArchLike`, everything that names an architecture, and :func:`get_architecture`, the one
  function that turns it into an :class:`Architecture`.
- Constants read from the native core (``src/arch.rs``, ``src/space.rs``, ``src/flops.rs``), never
  retyped: :data:`FAMILIES`, :data:`PAPER_ARCHITECTURES`, :data:`DILATIONS`, :data:`DETECTORS`,
  :data:`CONVENTION`, :data:`MACS_INPUT_SIZE` and :data:`SAMPLINGS` (how a stage supernet draws allocations).

``import crnas.arch`` works without a usable native core; the classes and constants then raise
:class:`~crnas.NativeCoreUnavailable` when used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

from crnas._native import core, native_available

__all__ = [
    "Architecture",
    "StageSpace",
    "ArchLike",
    "get_architecture",
    "FAMILIES",
    "PAPER_ARCHITECTURES",
    "DILATIONS",
    "DETECTORS",
    "CONVENTION",
    "MACS_INPUT_SIZE",
    "SAMPLINGS",
]

if TYPE_CHECKING or native_available():
    from crnas._core import (
        CONVENTION,
        DETECTORS,
        DILATIONS,
        FAMILIES,
        MACS_INPUT_SIZE,
        PAPER_ARCHITECTURES,
        SAMPLINGS,
        Architecture,
        StageSpace,
    )
else:

    class _NeedsCore(type):
        """Metaclass of the stand-ins for the native classes: any use raises NativeCoreUnavailable."""

        def __call__(cls, *args: Any, **kwargs: Any) -> NoReturn:
            core()
            raise AssertionError("unreachable")

        def __getattr__(cls, name: str) -> NoReturn:
            core()
            raise AssertionError("unreachable")

    class _Constant:
        """Stand-in for a constant of the native core: any use raises NativeCoreUnavailable."""

        def __init__(self, name: str) -> None:
            self._name = name

        def _fail(self, *args: Any) -> NoReturn:
            core()
            raise AssertionError("unreachable")

        __iter__ = __len__ = __contains__ = __getitem__ = __getattr__ = _fail

        def __repr__(self) -> str:
            return f"<crnas.arch.{self._name}: needs the native core>"

    Architecture = _NeedsCore("Architecture", (), {"__module__": "crnas._core"})
    StageSpace = _NeedsCore("StageSpace", (), {"__module__": "crnas._core"})
    FAMILIES = _Constant("FAMILIES")
    PAPER_ARCHITECTURES = _Constant("PAPER_ARCHITECTURES")
    DILATIONS = _Constant("DILATIONS")
    DETECTORS = _Constant("DETECTORS")
    CONVENTION = _Constant("CONVENTION")
    MACS_INPUT_SIZE = _Constant("MACS_INPUT_SIZE")
    SAMPLINGS = _Constant("SAMPLINGS")

#: What names an architecture: an :class:`Architecture`; a family (its baseline, ``"resnet50"``) or a
#: paper architecture (``"cr_resnet50"``); JSON text; an architecture dict (:meth:`Architecture.to_dict`)
#: or a search result holding one under ``"architecture"``; the path of either as a JSON file.
ArchLike: TypeAlias = "Architecture | str | os.PathLike[str] | Mapping[str, Any]"


def get_architecture(spec: ArchLike, *, width: float | None = None) -> Architecture:
    """The :class:`Architecture` that ``spec`` names (see :data:`ArchLike`), with ``width`` overriding
    its channel multiplier when given."""
    arch = _architecture(spec)
    if width is None:
        return arch
    if isinstance(width, bool) or not isinstance(width, (int, float)):
        raise TypeError(f"width: expected a number or None, got {type(width).__name__}")
    return arch.replace(width=float(width))


def _architecture(spec: ArchLike) -> Architecture:
    if isinstance(spec, Architecture):
        return spec
    if isinstance(spec, Mapping):
        data = spec.get("architecture", spec)
        return Architecture.from_dict(dict(data) if isinstance(data, Mapping) else data)
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if text in PAPER_ARCHITECTURES:
            return Architecture.paper(text)
        if text in FAMILIES:
            return Architecture.baseline(text)
        if text.lstrip().startswith("{"):
            return _architecture(json.loads(text))
        path = Path(text)
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: expected an architecture or result JSON, got invalid JSON ({err})") from None
            return _architecture(data)
        names = ", ".join(FAMILIES + PAPER_ARCHITECTURES)
        raise ValueError(f"arch: expected an Architecture, one of {names}, JSON or a JSON file, got {text!r}")
    raise TypeError(f"arch: expected an Architecture, a name, JSON or a path, got {type(spec).__name__}")
