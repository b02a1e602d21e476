"""Models whose weights are a memory-mapped file's pages, and how many of them are resident."""

from __future__ import annotations

from pathlib import Path

import torch


def resident_kb(path: Path) -> int:
    """kB of ``path``'s mappings resident in this process (``/proc/self/smaps``: the
    kernel's count)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                inside = len(fields) > 5 and fields[5] == str(path)
            elif inside and fields[0] == "Rss:":
                total += int(fields[1])
    return total


def memory_mapped(module: torch.nn.Module, path: Path) -> torch.nn.Module:
    """``module`` with its parameters and buffers replaced by the same values loaded
    memory-mapped from ``path`` (written here), as a checkpoint loads."""
    torch.save(module.state_dict(), path)
    module.load_state_dict(torch.load(path, mmap=True, weights_only=True), assign=True)
    return module
