"""Can this process's ExecuTorch runtime load and run a program? Kernels, backends, a smoke run.

The runtime registers kernels by operator name (``aten::linear.out``): the portable and
optimized libraries come with ``executorch.runtime``; the quantized and LLM custom-op
libraries register when their Python modules are imported (``load_kernel_libraries``).
A kernel that exists may still lack a dtype variant (``aten::linear.out`` has no
``{Float, Char, Float}``): only executing finds that, hence ``smoke_run``.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .errors import PteflowError


class RuntimeLoadError(PteflowError, RuntimeError):
    """The ExecuTorch runtime here cannot load or execute a program (the message says why)."""


def load_kernel_libraries() -> None:
    """Register the quantized and LLM custom-op kernels in this process (optional ones)."""
    with contextlib.suppress(ImportError):
        import executorch.extension.llm.custom_ops.custom_ops
    with contextlib.suppress(ImportError):
        import executorch.kernels.quantized  # noqa: F401


def load_program(data: bytes | os.PathLike[str] | str) -> Any:
    """``executorch.runtime``'s ``load_program(data)``; for a file, the pages its loader
    locked are unlocked and handed back (``mapped_pages.unlock_file``): they fault back
    in from the file where a method reads them, instead of the whole constant segment
    staying resident and pinned while the program is alive."""
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(data)
    if isinstance(data, (str, os.PathLike)):
        from .mapped_pages import unlock_file

        unlock_file(data)
    return program


def registered_operators() -> frozenset[str]:
    """Names (``aten::add.out``) of every kernel the runtime here registers."""
    from executorch.runtime import Runtime

    load_kernel_libraries()
    return frozenset(Runtime.get().operator_registry.operator_names)


def registered_backends() -> frozenset[str]:
    """Names of the delegate backends the runtime here registers.

    Reads the pybindings directly while ``executorch.runtime`` is not imported yet (a
    fraction of its import time; ``driver list backends`` asks this), else its public API.

    Raises:
        ImportError: the ExecuTorch runtime cannot be imported here.
    """
    import sys

    if "executorch.runtime" not in sys.modules:
        with contextlib.suppress(ImportError):
            from executorch.extension.pybindings import _C

            return frozenset(_C._get_registered_backend_names())
    from executorch.runtime import Runtime

    return frozenset(Runtime.get().backend_registry.registered_backend_names)


def _schema_program(manager: Any) -> Any:
    """The emitted schema program (``executorch_program``), or one read back from the bytes."""
    with contextlib.suppress(AttributeError, RuntimeError):
        return manager.executorch_program  # a program restored from the cache has none
    from executorch.exir._serialize._program import deserialize_pte_binary

    from .serialized import pte_bytes

    return deserialize_pte_binary(pte_bytes(manager)).program


def program_operators(manager: Any) -> dict[str, list[str]]:
    """Per method: the operators it calls outside delegates (``name.overload``)."""
    out = {}
    for plan in _schema_program(manager).execution_plan:
        ops = plan.operators
        out[plan.name] = [f"{o.name}.{o.overload}" if o.overload else o.name for o in ops]
    return out


def missing_kernels(manager: Any) -> dict[str, list[str]]:
    """Per method, the operators outside delegates that no kernel here registers."""
    have = registered_operators()
    out = {}
    for method, ops in program_operators(manager).items():
        missing = sorted({op for op in ops if op not in have})
        if missing:
            out[method] = missing
    return out


def delegates(manager: Any) -> dict[str, list[str]]:
    """Per method of an ``ExecutorchProgramManager``: the backend ids of its delegates.

    Read from the schema program the manager already holds: deserializing its bytes
    would make a second copy of every weight (the .pte's size) just for the ids.
    """
    plans = _schema_program(manager).execution_plan
    return {p.name: sorted({d.id for d in p.delegates}) for p in plans}


# Lines of the runtime's log that say what went wrong, most telling first.
_TELLING = (
    re.compile(r"Missing operator.*"),
    re.compile(r"KernelCall failed.*"),
    re.compile(r"Check failed \(.*\):\s*(\S.*)"),  # the check's message, if it has one
    re.compile(r"Backend \S+ is not registered.*"),
)
_ANY_FAILURE = re.compile(r".*[Ff]ailed.*")  # only when none of the above matched


def _gist(log: str) -> str:
    """The runtime log's few telling lines, joined on one line."""
    lines = [re.sub(r"^[A-Z]? ?[\d:.]* ?\[[^\]]*\] ?", "", ln).strip() for ln in log.splitlines()]
    found: list[str] = []
    for pattern in (*_TELLING, _ANY_FAILURE):
        if pattern is _ANY_FAILURE and found:
            break
        for ln in lines:
            m = pattern.search(ln)
            text = (m.group(1) if m and m.groups() else m.group(0)) if m else None
            if text and text not in found and len(found) < 3:
                found.append(text.strip())
    return "; ".join(found)


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Capture what the runtime logs (fd 2 and ``sys.stderr``); yields [text] after."""
    import io
    import sys

    out: list[str] = []
    text = io.StringIO()  # the pybindings log through Python's sys.stderr
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            with contextlib.redirect_stderr(text):
                yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace") + text.getvalue())


def smoke_run(
    data: bytes | os.PathLike[str],
    example_inputs: Mapping[str, Sequence[Any]],
    *,
    execute: bool = True,
    skip: Sequence[str] = (),
) -> None:
    """Load the program (bytes or a file) and each method (except ``skip``); execute each
    once on its example inputs.

    Raises:
        RuntimeLoadError: a method does not load or execute; the message has the method,
            the runtime's error and the telling lines of its log (not the whole log).
    """
    import sys

    import torch
    from torch.utils._pytree import tree_flatten

    load_kernel_libraries()
    step, method = "load the program", ""
    log: list[str] = []
    try:
        with _captured_stderr() as log:
            program = load_program(data)
            for method in sorted(program.method_names):
                if method in skip:
                    continue
                step = "load method"
                loaded = program.load_method(method)
                inputs = example_inputs.get(method)
                if execute and inputs is not None:
                    step = "execute method"
                    with torch.no_grad():
                        flat = [x for x in tree_flatten(tuple(inputs))[0]]
                        loaded.execute(flat)
                del loaded
            del program
    except Exception as e:
        what = f"{step} {method!r}" if method else step
        gist = _gist(log[0] if log else "")
        raise RuntimeLoadError(
            f"ExecuTorch's runtime cannot {what}: {e}" + (f" ({gist})" if gist else "")
        ) from e
    if log and log[0]:
        sys.stderr.write(log[0])  # nothing went wrong: pass the runtime's log through
