"""pteflow's Python API: compile, plan and bisect without building argv.

``driver run|plan|bisect|check-coverage`` parse their flags into the same options and
call these functions. Errors are ``pteflow.ir.errors`` exceptions: ``UserError`` (and
its subclasses ``UnknownNameError``, ``OptionError``, ``ModelError``, ``PipelineError``)
for what the caller can fix; ``PassFailedError`` / ``InvariantError`` when a pass fails.
Nothing is printed unless ``echo`` is given (``echo=print`` shows what ``driver`` shows).

    import pteflow

    result = pteflow.compile(pipeline="xnnpack_default", output="llama.pte")
    assert result.ok, result.verification.why_failed()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .options import (
    CacheOptions,
    Checks,
    DebugOptions,
    Echo,
    ModelOptions,
    PipelineOptions,
    RunOptions,
)

if TYPE_CHECKING:
    from pteflow.passes import Plan

    from .bisect import BisectResult, Probe
    from .coverage import CoverageResult
    from .run import CompileResult


def _lines(echo: Callable[..., Any] | None) -> Echo | None:
    """``echo`` as a text sink: ``print`` (or any one-argument callable) works."""
    if echo is None:
        return None
    if echo is print:
        return lambda text: print(text, end="", flush=True)
    return echo


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def compile(  # the name users look for; it shadows the builtin only in this module
    model: Any = None,
    *,
    pipeline: str | None = None,
    passes: str | Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    plugins: Sequence[str] = (),
    no_delegate: bool = False,
    params: str | None = None,
    checkpoint: str | None = None,
    max_seq_len: int | None = None,
    max_context_len: int | None = None,
    hf: str | Any | None = None,
    metadata: str | dict[str, Any] | None = None,
    output: str | Any | None = None,
    verify: bool | None = None,
    tol: float | None = None,
    checks: Checks = "boundaries",
    report: str | Any | None = None,
    cache: bool | CacheOptions = True,
    debug: DebugOptions | None = None,
    echo: Callable[..., Any] | None = None,
    warn: Echo | None = None,
    keep_program: bool = True,
) -> CompileResult:
    """Compile ``model`` with a pipeline to a ``.pte``, verify it, write the report.

    Args:
        model: ``None`` or ``"tiny-llama"`` (the built-in tiny Llama, or the pipeline's
            model); ``"MODULE:FUNCTION"``; ``(nn.Module, example_inputs[, dynamic_shapes])``;
            or a ``pteflow.ir.Program`` (EAGER, ATEN or EDGE). Objects are deep-copied.
        pipeline: a named pipeline (``driver list pipelines``) or a pipeline ``.toml``.
        passes: instead of ``pipeline``, passes by name: ``"export,to-edge,emit"`` or a list.
        overrides: ``"PASS.OPTION=VALUE"`` strings (``--set``).
        plugins: modules or ``.py`` files whose passes join the registry.
        no_delegate: leave out partitioning and the passes that only prepare for it.
        params, checkpoint, max_seq_len, max_context_len: a Meta-format Llama.
        hf: a local Hugging Face model directory (``driver list models``).
        metadata: constant methods to add or override (a dict or its JSON, ``--metadata``).
        output: the ``.pte`` path (sets ``emit.path``).
        verify: run the ``.pte`` and compare with its reference (default: when a ``.pte``
            is written and the pipeline does not say otherwise).
        tol: the largest accepted max abs difference (default: the pipeline's).
        checks: when invariants and claimed facts are checked.
        report: the JSON report's path (default: beside the ``.pte``).
        cache: use the pass-result cache (``CacheOptions`` for its directory and size).
        debug: IR printing, dumps, timing, numerics tracking, the reproducer directory.
        echo: where progress and the summary go (``print``, or a callable taking text
            that carries its own newlines); quiet when ``None``.
        warn: where one-line warnings go (default: the ``pteflow`` logger).
        keep_program: ``False`` lets go of the final program before ExecuTorch's runtime
            loads the ``.pte`` (a lower peak, as ``driver run``); ``.program`` is then None.

    Returns:
        ``CompileResult``: ``.pte``, ``.program``, ``.records``, ``.verification``,
        ``.report``, and ``.ok`` (false when the ``.pte`` was compared and is wrong).

    Raises:
        UserError: an unknown pipeline, pass or option; an unschedulable pipeline; a model
            that does not load; an output that cannot be written; all before any work
            where they can be known then.
        PassFailedError, InvariantError: a pass failed or broke an invariant.
    """
    from .resolve import check_model_source
    from .run import run

    check_model_source(model)
    options = RunOptions(
        pipeline=PipelineOptions(
            pipeline=pipeline,
            passes=passes,
            overrides=overrides,
            plugins=plugins,
            no_delegate=no_delegate,
        ),
        model=ModelOptions(
            source=model,
            params=_str(params),
            checkpoint=_str(checkpoint),
            max_seq_len=max_seq_len,
            max_context_len=max_context_len,
            hf=_str(hf),
            metadata=metadata if metadata is None or isinstance(metadata, str) else _json(metadata),
        ),
        checks=checks,
        output=_str(output),
        verify=verify,
        tol=tol,
        report=_str(report),
        cache=cache if isinstance(cache, CacheOptions) else CacheOptions(enabled=bool(cache)),
        debug=debug or DebugOptions(),
        keep_program=keep_program,
    )
    return run(options, echo=_lines(echo), warn=warn)


def _str(path: Any) -> str | None:
    """A path given as ``str`` or ``os.PathLike``, as the string the options hold."""
    return None if path is None else str(path)


def plan(
    *,
    pipeline: str | None = None,
    passes: str | Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    plugins: Sequence[str] = (),
    no_delegate: bool = False,
    from_level: str = "eager",
) -> Plan:
    """Order a pipeline's passes without running anything (``driver plan``).

    ``from_level``: the level of the input program (``eager``, ``aten``, ``edge``, ...).
    The returned ``Plan`` has ``ordered_passes()`` and ``render(all_reasons=...)``.

    Raises:
        UserError: an unknown pipeline, pass, option or level; an unschedulable pipeline.
    """
    from pteflow.ir import Level
    from pteflow.passes import plan as schedule

    from .resolve import build, source_facts, specs_for

    chosen = PipelineOptions(
        pipeline=pipeline,
        passes=passes,
        overrides=overrides,
        plugins=plugins,
        no_delegate=no_delegate,
    )
    pipe, specs = specs_for(chosen)
    registry, built = build(specs, chosen.plugins, no_delegate=chosen.no_delegate)
    start = Level.parse(from_level)
    return schedule(
        built,
        start_level=start,
        initial_facts=source_facts(pipe) if start == Level.EAGER else (),
        registry=registry,
    )


def bisect(
    model: Any = None,
    *,
    tol: float,
    pipeline: str | None = None,
    passes: str | Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    plugins: Sequence[str] = (),
    params: str | None = None,
    checkpoint: str | None = None,
    max_seq_len: int | None = None,
    max_context_len: int | None = None,
    checks: Checks = "each",
    on_probe: Callable[[Probe], None] | None = None,
) -> BisectResult:
    """Find the first pass of the planned order whose output drifts beyond ``tol`` (max abs
    difference to eager, or to the last quantizing pass's output) or that fails
    (``driver bisect``). ``model`` and the pipeline arguments are ``compile``'s; each probe
    runs a prefix on a fresh copy of the model; the ``.pte`` is written to a temporary file.

    Returns:
        ``BisectResult``: ``.first_bad`` (``None`` when every pass is good), ``.render()``.

    Raises:
        UserError: ``tol`` missing or negative; what ``compile`` refuses.
    """
    from .bisect import run_bisect
    from .resolve import check_model_source

    check_model_source(model)
    return run_bisect(
        PipelineOptions(pipeline=pipeline, passes=passes, overrides=overrides, plugins=plugins),
        ModelOptions(
            source=model,
            params=_str(params),
            checkpoint=_str(checkpoint),
            max_seq_len=max_seq_len,
            max_context_len=max_context_len,
        ),
        tol=tol,
        checks=checks,
        on_probe=on_probe,
    )


def check_coverage(
    model: Any = None,
    *,
    pipeline: str | None = None,
    passes: str | Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    plugins: Sequence[str] = (),
    checks: Checks = "boundaries",
    echo: Callable[..., Any] | None = None,
) -> CoverageResult:
    """Run a pipeline up to its partitioner and ask its backend which ops it can take
    (``driver check-coverage``); needs no backend SDK.

    Raises:
        UserError: no partitioner of the pipeline has a coverage check; what ``compile``
            refuses.
    """
    from .coverage import run_coverage
    from .resolve import check_model_source

    check_model_source(model)
    return run_coverage(
        PipelineOptions(pipeline=pipeline, passes=passes, overrides=overrides, plugins=plugins),
        ModelOptions(source=model),
        checks=checks,
        echo=_lines(echo),
    )
