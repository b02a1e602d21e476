"""The model-source package imports without torch or ExecuTorch (``driver --help`` and
``driver list`` stay fast; torch loads when a model is built)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import importlib, pkgutil, sys
import pteflow.driver.models as models
names = [m.name for m in pkgutil.walk_packages(models.__path__, models.__name__ + ".")]
for name in names:
    importlib.import_module(name)
print(len(names), sorted(m for m in ("torch", "executorch", "torchao") if m in sys.modules))
"""


def test_every_model_source_module_imports_without_torch():
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    count, loaded = proc.stdout.split(" ", 1)
    assert int(count) >= 7  # loaded, callable, llama and its four modules
    assert loaded.strip() == "[]"
