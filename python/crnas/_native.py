"""Loading the native core ``crnas._core``.

``import crnas`` always succeeds; the pure-PyTorch parts (models, reference ops) work without the
core. Anything native goes through :func:`core`, which raises :class:`NativeCoreUnavailable`
naming the torch version the core was built for and the one found.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from types import ModuleType

import torch

__all__ = ["NativeCoreUnavailable", "core", "native_available", "built_for_torch"]


class NativeCoreUnavailable(RuntimeError):
    """The Rust extension ``crnas._core`` cannot be used with the torch that is installed."""


def _base(version: str) -> str:
    return version.split("+")[0]


def built_for_torch() -> str | None:
    """The torch version this installation of crnas was built for (from its metadata), if known."""
    try:
        requires = importlib.metadata.requires("crnas") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for req in requires:
        m = re.fullmatch(r"torch\s*==\s*([0-9][\w.+]*)", req.split(";")[0].strip())
        if m:
            return m.group(1)
    return None


def _load() -> tuple[ModuleType | None, str | None]:
    found = torch.__version__
    expected = built_for_torch()
    hint = (
        "Install the torch version crnas was built for, or rebuild crnas against this torch "
        "(scripts/build-for-torch.sh, see the README)."
    )
    if expected is not None and _base(expected) != _base(found):
        return None, f"crnas's native core was built for torch {expected}, but torch {found} is installed. {hint}"
    try:
        mod = importlib.import_module("crnas._core")
    except ImportError as err:
        return None, (
            f"crnas's native core could not be loaded with torch {found} "
            f"(built for torch {expected or 'unknown'}): {err}. {hint}"
        )
    built = mod.__torch_version__
    if _base(built) != _base(found):
        return None, f"crnas's native core was built for torch {built}, but torch {found} is installed. {hint}"
    return mod, None


_CORE, _ERROR = _load()


def native_available() -> bool:
    """Whether the native core loaded and matches the installed torch."""
    return _CORE is not None


def core() -> ModuleType:
    """The native module, or :class:`NativeCoreUnavailable` explaining why it cannot be used."""
    if _CORE is None:
        raise NativeCoreUnavailable(_ERROR)
    return _CORE
