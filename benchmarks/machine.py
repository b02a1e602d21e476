"""The machine a benchmark ran on, in one line (for reports that state where numbers come from)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        names = [ln.split(":", 1)[1].strip() for ln in lines if "model name" in ln]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        load = f"load {os.getloadavg()[0]:.1f}"
    except OSError:
        load = ""
    from importlib.metadata import version

    pins = ", ".join(f"{p} {version(p)}" for p in ("torch", "executorch", "torchao"))
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), {load}; {pins}"
    )
