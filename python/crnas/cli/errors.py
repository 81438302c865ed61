"""What the command line reports for a failed command: one line, whatever raised it, and the devices."""

from __future__ import annotations

import torch

__all__ = ["one_line", "check_device"]

_WORKER = "in DataLoader worker process"


def one_line(error: BaseException) -> str:
    """``error`` as one line. An error raised inside a DataLoader worker arrives re-raised by torch with
    the worker's traceback in its message; the original error's last line is kept."""
    message = str(error)
    if _WORKER in message.split("\n", 1)[0]:
        last = message.rstrip().splitlines()[-1]
        kind, _, text = last.partition(": ")
        message = text if text and kind.replace(".", "").isidentifier() else last
    return " ".join(message.split()) or type(error).__name__


def _available() -> list[str]:
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        names += [f"xpu:{i}" for i in range(xpu.device_count())]
    return names


def check_device(name: str | None, option: str = "--device") -> None:
    """Raise ``ValueError`` naming ``name`` and the devices this machine has when torch cannot use it."""
    if name is None:
        return
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"{option}: expected a torch device (cpu, cuda, cuda:1, mps, ...), got {name!r}") from None
    if device.type == "cpu":
        return
    module = getattr(torch, device.type, None) if device.type != "mps" else getattr(torch.backends, "mps", None)
    available = bool(module is not None and getattr(module, "is_available", lambda: False)())
    count = getattr(module, "device_count", lambda: 1)() if available else 0
    if not available or (device.index is not None and device.index >= count):
        why = f"this torch ({torch.__version__}) sees no {device.type} device" if not available else f"{count} {device.type} device(s)"
        raise ValueError(f"{option}: device {name!r} is not available ({why}); available: {', '.join(_available())}")
