"""One compile: options in, a ``.pte``, its verification and the report out.

``run(RunOptions)`` is what ``pteflow.compile`` and ``driver run`` do: refuse what cannot
work before any work (outputs, availability, schedule, cache directory), load the model,
run the passes with the debugging observers, verify the ``.pte``, write the JSON report.
Text (progress, summary, tables) goes to ``echo``; nothing is printed without one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import attrs

from .options import Echo, RunOptions
from .progress import Progress
from .resolve import (
    build,
    dropped_for_delegation,
    load_model,
    open_cache,
    source_facts,
    specs_for,
    where,
)
from .summary import arbitration, cache_rows, not_delegated_note, summary_lines


@attrs.frozen
class CompileResult:
    """What ``pteflow.compile`` produced.

    ``pte``: the written file (``None`` without an emit pass); ``program``: the final
    program; ``records``: one ``PassRecord`` per pass in run order; ``verification``: the
    ``.pte`` against its reference (``None`` when not verified; ``.ok``, ``.failed``,
    ``.skipped``); ``report``: the JSON report as a dict (also written to ``report_path``).
    """

    pte: Path | None
    program: Any
    records: tuple[Any, ...]
    verification: Any
    report: dict[str, Any]
    report_path: Path | None
    run: Any  # the manager's RunResult (plan, schedule time, cache stats)

    @property
    def ok(self) -> bool:
        """True unless the verification compared the ``.pte`` and found it wrong."""
        return self.verification is None or not self.verification.failed


def _quiet(text: str) -> None:
    pass


def run(
    options: RunOptions, *, echo: Echo | None = None, warn: Echo | None = None
) -> CompileResult:
    """Compile as ``options`` say; see ``pteflow.compile`` for the arguments.

    Upstream warnings and C++ stderr go to the run log beside the report while it runs
    (``driver/console.py``; ``options.console``).

    Raises:
        UserError: (and its subclasses) anything the options, pipeline or model get wrong,
            before any work where it can be known then.
        PassFailedError, InvariantError: a pass failed or broke an invariant; a reproducer
            was written (``e.repro_dir``).
    """
    from .console import RunConsole

    shown = options.console
    verbose = shown.verbosity == "verbose"
    from pteflow.ir.errors import UserError

    with RunConsole(echo or _quiet, verbose=verbose, live=shown.live) as console:
        try:
            return _compile(options, echo, console.wrap_warn(warn or _log_warning), console)
        except UserError:
            console.discard()  # a refused run writes nothing, no log either
            raise


def _compile(options: RunOptions, echo: Echo | None, warn: Echo, console: Any) -> CompileResult:
    quiet = options.console.verbosity == "quiet"
    verbose = options.console.verbosity == "verbose"
    out = _quiet if quiet else (echo or _quiet)

    def say(text: str = "") -> None:
        out(text + "\n")

    from pteflow.ir import Level
    from pteflow.ir.errors import UserError

    chosen, model_opts, debug = options.pipeline, options.model, options.debug
    pipe, specs = specs_for(chosen)
    if options.output is not None:
        from .spec import apply_overrides

        if not any(s.name == "emit" for s in specs):
            raise UserError("-o given, but the pipeline has no emit pass; add emit")
        specs = apply_overrides(specs, [f"emit.path={options.output}"])
    registry, passes = build(specs, chosen.plugins, no_delegate=chosen.no_delegate)
    dropped = dropped_for_delegation(specs, passes) if chosen.no_delegate else []
    from .options import DEFAULT_REPRO_DIR
    from .outputs import check_run

    check_run(  # before any work: a .pte/report/dump path that cannot be written
        passes,
        report=options.report,
        output_given=options.output is not None,
        dump_dir=debug.dump_dir,
        repro_dir=debug.repro_dir,
        repro_dir_given=debug.repro_dir != DEFAULT_REPRO_DIR,
    )
    emits = [p for p in passes if p.name == "emit"]
    pte = Path(emits[0].path) if emits else None
    etrecord = None
    if options.etrecord:  # refused before any work if the run cannot make one
        from .etrecord import ETRecordWriter

        etrecord = ETRecordWriter.for_run(Path(options.etrecord), passes)
    log = _log_path(options, pte)
    if log is not None and options.console.capture:
        console.start(log)  # from here on, upstream noise goes to the log
    from .debug import parse_selection

    names = [p.name for p in passes]
    print_after = parse_selection(debug.print_ir_after, "--print-ir-after", names)
    print_before = parse_selection(debug.print_ir_before, "--print-ir-before", names)
    manager = _checked_manager(passes, options, registry)
    if not model_opts.given:
        # Refuse an unschedulable pipeline before paying for torch and the model.
        # (--model sources are planned once loaded: only then are their facts known.)
        manager.plan(initial_facts=source_facts(pipe))

    from .verify import tolerance_for

    tolerance = tolerance_for(options.tol, pipe, passes, no_delegate=chosen.no_delegate)
    cache = None
    if options.cache.enabled:  # a bad --cache-dir/--cache-size is refused before any work
        cache = open_cache(options.cache, warn)
        cache.check_writable()

    t0 = time.perf_counter()
    console.stage("model", "model")
    model = load_model(model_opts, pipe)
    say(f"model: {model.description}")
    if model.program.level > Level.EAGER:  # a Program given at a later level
        from pteflow.passes import PassManager

        from .models import fit_to_level

        passes, done_already = fit_to_level(passes, model.program.level, where(model_opts, pipe))
        manager = PassManager(passes, verify=options.checks, registry=registry)
        if done_already:
            say(f"left out (the model is already past them): {', '.join(done_already)}")
    model = attrs.evolve(model, tolerance=tolerance)
    load_s = time.perf_counter() - t0

    console.end_stage()
    observers, numerics = _observers(options, manager, model, print_before, print_after, say)
    progress = Progress(len(passes), out, console, newline=debug.prints_ir or verbose, logs=verbose)
    observers.insert(0, progress)
    if etrecord is not None:
        observers.append(etrecord)
    do_verify = (
        options.verify
        if options.verify is not None
        else (pte is not None and (pipe.verify if pipe else True))
    )
    if do_verify and pte is None:
        raise UserError("--verify needs a .pte: add the emit pass")
    quantized_ref = None
    if do_verify:
        # a quantized .pte must compute what the eager model with the same quantization
        # computes: keep the program right after the last quantizing pass as the reference
        from .quantized_reference import QuantizedReference

        ordered = manager.plan(
            start_level=model.program.level, initial_facts=model.program.facts
        ).ordered_passes()
        quantized_ref = QuantizedReference.for_run(ordered, model)
        if quantized_ref is not None:
            observers.append(quantized_ref)
    from .memory import MappedPagesRelease, MemoryWatch, startup_objects_frozen

    memory = MemoryWatch()
    observers += [MappedPagesRelease(), memory]
    watching = sorted({o.flag for o in observers if o.needs_every_pass})
    if cache is not None and watching:
        say(f"cache: not used ({', '.join(watching)} must see every pass run)")
        cache = None
    from .warm import full_hit_result, look_up

    keys_of_run, full = look_up(cache, manager, model.program, pte)  # an unchanged re-run?
    from . import release

    releasing = not options.keep_program and etrecord is None
    with release.deferring(releasing) as pending:  # emit's files: checked once released
        if full is not None and pte is not None and cache is not None:
            result = full_hit_result(full, pte, progress, cache.directory)
            warm_keys = keys_of_run()
            kept = release.Kept(full.constants, None)
        else:
            with startup_objects_frozen():  # the collector skips what outlives the run
                result = manager.run(model.program, observers=observers, cache=cache)
            warm_keys = keys_of_run()  # (a cold run's first key was taken while it ran)
            kept = release.keep(result, pte, cache, warm_keys, pending)
        if pending:
            result = release.released(result)  # the only reference to the program: dropped
            shown = say if verbose else _quiet
            result = release.commit(result, pending, observers, memory, console, shown)

    console.end_stage()
    verification = None
    if do_verify and pte is not None:
        from .warm import verify_or_recall

        out("verifying the .pte against its reference ...")  # long at 1B: a line meanwhile
        console.timed_stage("verify", "verify")
        started = time.perf_counter()
        digest = kept.prepared.pte_digest if kept.prepared is not None else None
        verification = verify_or_recall(
            pte, model, quantized_ref, warm_keys, options.checks, registry, cache, digest
        )
        console.end_stage()
        out(f" {time.perf_counter() - started:.2f}s\n")
    memory.finish()
    if etrecord is not None:
        console.stage("etrecord", "etrecord")
        etrecord.write(result.program)
        console.end_stage()
    not_delegated = not_delegated_note(dropped) if chosen.no_delegate else None
    if not_delegated:
        say(not_delegated)

    detail = "quiet" if quiet else ("full" if verbose else "short")
    result_out = echo or _quiet  # -q still prints the result
    for line in summary_lines(result, pte, verification, detail=detail):
        result_out(line + "\n")
    if full is not None:
        say("cache: full hit: wrote the .pte of an identical earlier run; no pass ran")
    from .pte_metadata import metadata_line, written_metadata

    # a full hit read them when it made the .pte (reading them loads the runtime, whose
    # pybindings import executorch.exir)
    written = full.metadata if full is not None else written_metadata(pte)
    if written is not None:
        say(metadata_line(written))
    from .debug import timing_rows, timing_table

    if debug.timing:
        say(timing_table(result.records, memory=memory.rows))
    if numerics is not None:
        from .numerics import numerics_table

        say(numerics_table(numerics.rows, model.tolerance))
        say(f"numerics: {numerics.eval_s:.2f}s of evaluation")
        if debug.plot:
            from .plot import plot_numerics

            plot_numerics(numerics.rows, model.tolerance, Path(debug.plot))
            say(f"numerics plot: {debug.plot}")
    claimed = arbitration(result.program)
    report = {
        "pipeline": pipe.name if pipe else chosen.passes,
        "model": model.description,
        "load_s": load_s,
        "schedule_s": result.schedule_s,
        "cache": result.cache,
        "cache_rows": cache_rows(result.cache),
        "order": [p.describe() for p in result.plan.ordered_passes()],
        "passes": [r.to_json() | memory.for_record(i) for i, r in enumerate(result.records)],
        "memory": memory.to_json(),
        "pte": str(pte) if pte else None,
        "pte_bytes": pte.stat().st_size if pte else None,
        "verification": verification.to_json() if verification else None,
        "no_delegate": {"dropped": dropped, "note": not_delegated} if chosen.no_delegate else None,
        "timing": timing_rows(result.records, memory=memory.rows),
        "numerics": [r.to_json() for r in numerics.rows] if numerics is not None else None,
        "numerics_eval_s": numerics.eval_s if numerics is not None else None,
        "arbitration": claimed.to_json() if claimed else None,
        "etrecord": options.etrecord,
        "constants": kept.constants,
        "metadata": written,
    }
    upstream = console.report_warnings(report)
    report_path = (
        Path(options.report)
        if options.report
        else (pte.with_suffix(".report.json") if pte else None)
    )
    if report_path:
        from pteflow.passes.emit.emit import write_atomically

        write_atomically(report_path, json.dumps(report, indent=2, default=str).encode())
        say(f"report: {report_path}" + (f"; {upstream}" if upstream else ""))
    if full is None and warm_keys is not None and pte is not None:
        from .warm import store_full_run

        store_full_run(
            cache, warm_keys, pte, kept.prepared, result, verification, kept.constants, written
        )
    # a full hit ran no pass; a released program is gone
    program = None if full is not None or not options.keep_program else result.program
    return CompileResult(pte, program, result.records, verification, report, report_path, result)


def _log_path(options: RunOptions, pte: Path | None) -> Path | None:
    """``m.log`` beside the ``.pte`` (else beside ``--report``; no file: nothing captured)."""
    if pte is not None:
        return pte.with_suffix(".log")
    if options.report:
        return Path(options.report).with_suffix(".log")
    return None


def _log_warning(text: str) -> None:
    import logging

    logging.getLogger("pteflow").warning(text)


def _checked_manager(passes: list, options: RunOptions, registry: dict) -> Any:
    """The manager, its passes' availability checked (a missing SDK is known in a second)."""
    from pteflow.ir.errors import UnavailableError
    from pteflow.passes import PassManager

    manager = PassManager(passes, verify=options.checks, registry=registry)
    try:
        manager.check_available()
    except UnavailableError as e:
        from pteflow.ir import facts

        quantized = any(p.contract.provides & facts.QUANTIZATION for p in passes)
        from pteflow.passes.policy import delegation_of

        if quantized and any(delegation_of(p) and p.unavailable_reason() for p in passes):
            raise UnavailableError(
                f"{e}; or run with --no-delegate to check the backend-quantized graph without it"
            ) from None
        raise
    return manager


def _observers(
    options: RunOptions, manager: Any, model: Any, before: Any, after: Any, say: Echo
) -> tuple[list, Any]:
    """The run's PassObservers from the debugging options; the numerics tracker if on."""
    from .debug import DumpDir, IRPrinter
    from .plugins import absolute
    from .repro import ReproRecorder

    debug = options.debug
    ordered = manager.plan(
        start_level=model.program.level, initial_facts=model.program.facts
    ).ordered_passes()
    observers: list = [
        ReproRecorder(
            Path(debug.repro_dir),
            ordered,
            verify=options.checks,
            plugins=absolute(list(options.pipeline.plugins)),
            eager_input=model.reference,  # untouched until verification, after the run
        )
    ]
    if before or after or debug.print_changed:
        observers.append(
            IRPrinter(before=before, after=after, changed=debug.print_changed, out=say)
        )
    if debug.dump_dir:
        observers.append(DumpDir(Path(debug.dump_dir)))
    numerics = None
    if debug.track_numerics:
        from .numerics import NumericsTracker

        numerics = NumericsTracker(model.reference, model.steps, model.tolerance)
        observers.append(numerics)
    return observers, numerics
