"""The README's "Adding a pass" example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_the_readme_example_pass_and_its_test_pass(tmp_path):
    blocks = re.findall(r"```python\n# file: (\S+)\n(.*?)```", README.read_text(), re.S)
    assert {name for name, _ in blocks} == {"my_passes.py", "test_my_passes.py"}
    for name, body in blocks:
        (tmp_path / name).write_text(body)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_passes.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_the_readme_opens_with_the_two_commands():
    text = README.read_text()
    first_block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert first_block
    lines = first_block.group(1).strip().splitlines()
    assert lines == [
        "bash scripts/env.sh && .venv/bin/driver run --pipeline xnnpack_default -o llama.pte",
        "bash scripts/env.sh && .venv/bin/python -m pytest",
    ]
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert lines[1] in ci
