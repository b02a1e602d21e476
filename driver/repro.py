"""Reproducers: when a pass raises or breaks an invariant, write what re-runs it alone.

A reproducer directory holds:

    repro.json     the failing pass (name, options), the passes to replay
                   before it, the passes that were still to run (for reading: the
                   plan's options, e.g. to-edge's keep_whole_for, say what they
                   changed), the check mode, plugins, package versions and the error
    program/       the input: ``<method>.pt2`` files (``torch.export.save``) when
                   the program was at ATEN, else ``eager.pt`` (``torch.save`` of
                   the modules; needs their classes importable)
    inputs.pt      example inputs, metadata and facts of that program
    repro.sig      an HMAC over every other file, with the user's key
                   (``pteflow.passes.cache.auth``): ``driver repro`` unpickles
                   nothing it cannot authenticate, unless told ``--trust``

The input is captured (a deep copy, serialized only when a pass fails)
before passes can edit it in place: the program as it was when it first
reached ATEN (or the EAGER input, for a failure before export). Passes
between that point and the failing one are replayed: none for a failure in
the first ATEN pass. EDGE programs are not serialized (not attempted: an
``EdgeProgramManager`` with delegates has no save/load pair pteflow uses);
their ATEN input and the passes to replay stand in for them.

``driver repro DIR`` rebuilds the program, replays, runs the failing pass
with the same checks, and compares the error with the recorded one.
"""

from __future__ import annotations

import io
import json
import traceback
from collections.abc import Mapping, Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import attrs

from pteflow.ir import Level, Program
from pteflow.ir.errors import InvariantError, PassFailedError, UserError
from pteflow.passes.base import Pass
from pteflow.passes.manager import PassObserver, PassRecord, Verify

FORMAT = 1
PACKAGES = ("torch", "executorch", "torchao", "pteflow")


def spec_of(p: Pass) -> dict[str, Any]:
    """A pass as name + non-default options (JSON), rebuildable with ``build_pass``."""
    return {"name": p.name, "options": _jsonable(p.non_default_options())}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def error_signature(e: BaseException) -> str:
    """What identifies a failure independent of the pass's position in the pipeline."""
    if isinstance(e, PassFailedError):
        cause = e.__cause__
        return f"PassFailedError in {e.pass_name}: {type(cause).__name__}: {cause}"
    if isinstance(e, InvariantError):
        return f"{type(e).__name__}: {e}"
    return f"{type(e).__name__}: {e}"


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@attrs.frozen
class _Snapshot:
    rank: int  # the pass that was about to run on it
    program: Program  # with a deep copy of the artifact (serialized only on failure)

    @property
    def level(self) -> Level:
        return self.program.level


class ReproRecorder(PassObserver):
    """Snapshot the input at EAGER and on reaching ATEN; on failure write the directory."""

    def __init__(
        self,
        root: Path,
        ordered: Sequence[Pass],
        *,
        verify: Verify,
        plugins: Sequence[str] = (),
        eager_input: Mapping[str, Any] | None = None,
    ):
        self.root = Path(root)
        self.ordered = list(ordered)
        self.verify = verify
        self.plugins = list(plugins)
        # an untouched copy of the EAGER input the caller already holds (the driver's
        # verification reference): used as the snapshot instead of copying the model again
        self.eager_input = eager_input
        self.snapshot: _Snapshot | None = None
        self.problem: str | None = "no input was captured"
        self.written: Path | None = None

    def before(self, rank: int, pass_: Pass, program_in: Program) -> None:
        at_aten = program_in.level == Level.ATEN
        first_aten = at_aten and (self.snapshot is None or self.snapshot.level != Level.ATEN)
        at_start = rank == 0 and program_in.level == Level.EAGER
        from .models.reference import LazyReference

        # a reference built again on demand: the snapshot costs no copy, and replaying
        # from EAGER spares keeping a copy of the exported program's weights all run long
        lazy = isinstance(self.eager_input, LazyReference)
        if at_start and self.eager_input is not None:
            artifact = self.eager_input if lazy else dict(self.eager_input)
            self.snapshot = _Snapshot(rank, program_in.evolve(artifact=artifact))
        elif first_aten and lazy and self.snapshot is not None:
            return  # keep the EAGER snapshot: it costs nothing until a failure
        elif at_start or first_aten:
            import copy

            # a deep copy costs ~1/20 of torch.export.save: serialize only on failure
            try:
                artifact = copy.deepcopy(dict(program_in.artifact))
            except Exception as e:  # no reproducer input; the run goes on
                self.snapshot = None
                self.problem = f"the input could not be copied: {type(e).__name__}: {e}"
                return
            self.snapshot = _Snapshot(rank, program_in.evolve(artifact=artifact))

    def after(self, rank: int, pass_: Pass, program_out: Program, record: PassRecord) -> None:
        pass

    def failed(self, rank: int, pass_: Pass, error: BaseException) -> None:
        if isinstance(error, PassFailedError) and error.is_user_error:
            return  # the model or the options were wrong: the one-line message is enough
        try:
            self.written = self._write(rank, pass_, error)
        except Exception as e:
            error.add_note(f"(could not write a reproducer: {type(e).__name__}: {e})")
            return
        error.repro_dir = self.written  # type: ignore[attr-defined]

    def _write(self, rank: int, pass_: Pass, error: BaseException) -> Path:
        import shutil

        snap = self.snapshot
        out = self.root / f"{rank + 1:03d}-{pass_.name}"
        if out.exists():
            shutil.rmtree(out)
        (out / "program").mkdir(parents=True)
        problem = self.problem
        if snap is not None:
            files, inputs, problem = _serialize(snap.program)
            for name, data in files.items():
                (out / "program" / name).write_bytes(data)
            (out / "inputs.pt").write_bytes(inputs)
        cause = error.__cause__ if isinstance(error, PassFailedError) else error
        info = {
            "format": FORMAT,
            "pass": spec_of(pass_),
            "pass_described": pass_.describe(),
            "rank": rank,
            "level": snap.level.label if snap else None,
            "input_problem": problem,
            "replay": [spec_of(p) for p in self.ordered[snap.rank : rank]] if snap else [],
            "upcoming": [spec_of(p) for p in self.ordered[rank + 1 :]],
            "verify": self.verify,
            "plugins": self.plugins,
            "versions": versions(),
            "error": {
                "message": str(error),
                "signature": error_signature(error),
                "type": type(error).__name__,
                "traceback": "".join(
                    traceback.format_exception(type(cause), cause, cause.__traceback__)
                )
                if cause is not None
                else "",
            },
            "command": f"driver repro {out}",
        }
        (out / "repro.json").write_text(json.dumps(info, indent=2) + "\n")
        (out / SIGNATURE).write_text(_signature(out).hex() + "\n")
        return out


#: the reproducer's HMAC file (see the module docstring)
SIGNATURE = "repro.sig"


def _signature(path: Path) -> bytes:
    """HMAC (the user's key) over every file of the directory but the signature itself."""
    from pteflow.passes.cache import auth

    return auth.sign(auth.user_key(), *_signature_parts(path))


def authenticate(path: Path) -> None:
    """Raise UserError unless ``path`` was written by this user's pteflow and not edited.

    Its inputs are unpickled (``torch.load(weights_only=False)``): bytes from anyone else
    could run code here.
    """
    from pteflow.passes.cache import auth

    sig = path / SIGNATURE
    try:
        mac = bytes.fromhex(sig.read_text().strip())
    except (OSError, ValueError):
        mac = b""
    if not mac or not auth.verify(auth.user_key(), mac, *_signature_parts(path)):
        why = "has no valid signature" if not mac else "fails authentication"
        raise UserError(
            f"{path} {why}: it was not written by your pteflow (or was edited since), and "
            "replaying it unpickles its files; read it, then add --trust to run it anyway"
        )


def _signature_parts(path: Path) -> list[bytes]:
    parts: list[bytes] = []
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.name != SIGNATURE):
        parts += [f.relative_to(path).as_posix().encode(), f.read_bytes()]
    return parts


def _serialize(program: Program) -> tuple[dict[str, bytes], bytes, str | None]:
    """Files under program/, the bytes of inputs.pt, and why the input could not be saved."""
    import torch

    files: dict[str, bytes] = {}
    problem = None
    try:
        if program.level == Level.ATEN:
            for method, ep in program.exported_programs().items():
                buf = io.BytesIO()
                torch.export.save(ep, buf)
                files[f"{method}.pt2"] = buf.getvalue()
        else:
            buf = io.BytesIO()
            torch.save(dict(program.modules()), buf)
            files["eager.pt"] = buf.getvalue()
    except Exception as e:
        problem = f"the input could not be saved: {type(e).__name__}: {e}"
        files = {}
    buf = io.BytesIO()
    shapes: Any = dict(program.dynamic_shapes)
    try:
        torch.save(
            {
                "example_inputs": dict(program.example_inputs),
                "dynamic_shapes": shapes,
                "metadata": dict(program.metadata),
                "facts": sorted(f.name for f in program.facts),
            },
            buf,
        )
    except Exception:
        buf = io.BytesIO()
        torch.save(
            {
                "example_inputs": dict(program.example_inputs),
                "dynamic_shapes": {},
                "metadata": dict(program.metadata),
                "facts": sorted(f.name for f in program.facts),
            },
            buf,
        )
    return files, buf.getvalue(), problem


# --------------------------------------------------------------------------- replay


@attrs.frozen
class Replay:
    reproduced: bool
    expected: str
    got: str | None  # the signature of the error this run raised; None: no error
    error: BaseException | None
    seconds: float


def load(path: Path, *, trust: bool = False) -> dict[str, Any]:
    """``repro.json``, once the directory is authenticated (or ``trust``).

    Raises:
        UserError: not a reproducer, another format, or not authenticated.
    """
    f = Path(path) / "repro.json"
    if not f.is_file():
        raise UserError(f"{path} is not a reproducer directory (no repro.json)")
    if not trust:
        authenticate(Path(path))
    info = json.loads(f.read_text())
    if info.get("format") != FORMAT:
        raise UserError(
            f"{f}: reproducer format {info.get('format')!r}; this driver reads {FORMAT}"
        )
    return info


def _program(path: Path, info: dict[str, Any]) -> Program:
    import torch

    from pteflow.ir import facts as facts_mod

    if info.get("level") is None or not (path / "inputs.pt").is_file():
        raise UserError(f"{path}: no input program was captured ({info.get('input_problem')})")
    if info.get("input_problem"):
        raise UserError(f"{path}: {info['input_problem']}")
    extra = torch.load(path / "inputs.pt", weights_only=False)
    known = {f.name: f for f in vars(facts_mod).values() if isinstance(f, facts_mod.Fact)}
    fact_set = {known[n] for n in extra["facts"] if n in known}
    level = Level.parse(info["level"])
    if level == Level.ATEN:
        artifact: Any = {
            f.stem: torch.export.load(f) for f in sorted((path / "program").glob("*.pt2"))
        }
        order = list(extra["example_inputs"])
        artifact = {m: artifact[m] for m in order if m in artifact}
    else:
        try:
            artifact = torch.load(path / "program" / "eager.pt", weights_only=False)
        except ImportError as e:  # the pickled modules name the model's own classes
            raise UserError(
                f"{path}: the EAGER input needs the model's classes, which do not import here "
                f"({e}); run from where they import (or set PYTHONPATH)"
            ) from None
    return Program(
        level,
        artifact,
        extra["example_inputs"],
        extra["dynamic_shapes"],
        extra["metadata"],
        fact_set,
    )


def replay(path: Path, *, trust: bool = False) -> Replay:
    """Rebuild the input, replay the passes before the failing one, run it; compare errors.

    ``trust``: run a reproducer this user's key does not authenticate (see ``load``).
    """
    import time

    from pteflow.passes.manager import PassManager

    from .spec import PassSpec, build_passes

    path = Path(path)
    info = load(path, trust=trust)
    entries = [*info["replay"], info["pass"]]
    registry, passes = build_passes(
        [PassSpec(e["name"], e["options"]) for e in entries], info.get("plugins", [])
    )
    program = _program(path, info)
    expected = info["error"]["signature"]
    t0 = time.perf_counter()
    try:
        PassManager(passes, verify=info["verify"], registry=registry).run(program)
    except (PassFailedError, InvariantError) as e:
        got = error_signature(e)
        return Replay(got == expected, expected, got, e, time.perf_counter() - t0)
    return Replay(False, expected, None, None, time.perf_counter() - t0)
