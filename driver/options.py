"""The options of a pteflow run, as typed values (what ``driver`` parses argv into).

``pteflow.compile`` / ``plan`` / ``bisect`` build these from keyword arguments and
``driver``'s commands build them from argparse once; nothing below the API sees argv.
Every class is frozen: an options value can be kept, compared and reused across runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import attrs

#: when the manager checks level invariants and claimed facts (``driver --checks``)
Checks = Literal["each", "boundaries", "off"]
#: where a run's progress, summaries and tables go (text with its own newlines)
Echo = Callable[[str], None]

DEFAULT_REPRO_DIR = "pteflow-repro"


def _strings(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _checks(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value not in ("each", "boundaries", "off"):
        from pteflow.ir.errors import OptionError

        raise OptionError(f"checks must be 'each', 'boundaries' or 'off', got {value!r}")


@attrs.frozen(kw_only=True)
class PipelineOptions:
    """Which passes: a named pipeline or TOML file, or a pass list, and edits to it.

    ``passes`` is the ``--passes`` text (``"export,to-edge{skip_dim_order=true}"``) or a
    sequence of such items; ``overrides`` are ``PASS.OPTION=VALUE`` strings (``--set``);
    ``plugins`` modules or ``.py`` files whose passes join the registry (``--plugin``);
    ``no_delegate`` leaves out partitioning and the passes that only prepare for it.
    """

    pipeline: str | None = None
    passes: str | None = attrs.field(
        default=None,
        converter=lambda v: v if v is None or isinstance(v, str) else ",".join(v),
    )
    overrides: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    plugins: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    no_delegate: bool = False

    def __attrs_post_init__(self) -> None:
        if self.pipeline is not None and self.passes is not None:
            from pteflow.ir.errors import UserError

            raise UserError("give either a pipeline or a pass list, not both")


@attrs.frozen(kw_only=True)
class ModelOptions:
    """What to compile (default: the built-in tiny Llama, or the pipeline's model).

    ``source``: ``None`` or ``"tiny-llama"``; ``"MODULE:FUNCTION"`` (MODULE may be a
    ``.py`` path); ``(nn.Module, example_inputs[, dynamic_shapes])``; or a
    ``pteflow.ir.Program``. Objects are deep-copied before the passes see them.
    ``params``/``checkpoint``: a Meta-format Llama (``params.json``, ``consolidated.pth``).
    ``hf``: a local Hugging Face model directory. ``metadata``: a JSON object of constant
    methods that adds to or overrides the model's runner metadata (``--metadata``).
    """

    source: Any = None
    params: str | None = None
    checkpoint: str | None = None
    max_seq_len: int | None = None
    max_context_len: int | None = None
    hf: str | None = None
    metadata: str | None = None

    @property
    def given(self) -> bool:
        """A source other than the Llama ones (the pipeline's model or the tiny Llama)."""
        return self.source is not None and self.source != "tiny-llama"

    def label(self) -> str | None:
        """How messages name the source (``--model 'SPEC'``'s SPEC), if it is a string."""
        if isinstance(self.source, str) and self.source != "tiny-llama":
            return self.source
        return None


@attrs.frozen(kw_only=True)
class CacheOptions:
    """The pass-result cache: on or off, where, and its size cap (``"10G"``, ``"500M"``)."""

    enabled: bool = True
    directory: str | None = None
    size: str = "10G"


@attrs.frozen(kw_only=True)
class DebugOptions:
    """Which-pass-broke-it options (README: "Which pass broke it").

    ``print_ir_after``/``print_ir_before``: ``"PASS[,PASS]"`` or ``"all"``;
    ``dump_dir``: one numbered dump per pass; ``timing``: print the per-pass time table;
    ``track_numerics``: the error of every pass's output against eager;
    ``repro_dir``: where a failing pass's reproducer goes.
    """

    print_ir_after: str | None = None
    print_ir_before: str | None = None
    print_changed: bool = False
    dump_dir: str | None = None
    timing: bool = False
    track_numerics: bool = False
    #: with ``track_numerics``: draw the error per pass to this image (``--plot``)
    plot: str | None = None
    repro_dir: str = DEFAULT_REPRO_DIR

    @property
    def prints_ir(self) -> bool:
        return bool(self.print_ir_before or self.print_ir_after or self.print_changed)


@attrs.frozen(kw_only=True)
class ConsoleOptions:
    """How much a run says, and where upstream noise goes (``driver run -v/-q``).

    ``verbosity``: ``"quiet"`` (the result and errors), ``"normal"`` (progress per pass and
    a short summary) or ``"verbose"`` (also the per-pass table, and upstream warnings as
    they happen). ``capture``: send upstream warnings and C++ stderr to the run log beside
    the report (``m.log``) instead of the console; ``live``: show the elapsed time of a long
    pass on its progress line (a terminal).
    """

    verbosity: Literal["quiet", "normal", "verbose"] = "normal"
    capture: bool = True
    live: bool = False


@attrs.frozen(kw_only=True)
class RunOptions:
    """Everything ``pteflow.compile`` (``driver run``) needs.

    ``output``: the ``.pte`` path (sets ``emit.path``); ``verify``: run the ``.pte`` and
    compare (``None``: on for named pipelines and whenever a ``.pte`` is written);
    ``tol``: the largest accepted max abs difference (default: the pipeline's);
    ``report``: the JSON report's path (default: beside the ``.pte``).
    """

    pipeline: PipelineOptions = PipelineOptions()
    model: ModelOptions = ModelOptions()
    checks: Checks = attrs.field(default="boundaries", validator=_checks)
    output: str | None = None
    verify: bool | None = None
    tol: float | None = None
    report: str | None = None
    cache: CacheOptions = CacheOptions()
    debug: DebugOptions = DebugOptions()
    console: ConsoleOptions = ConsoleOptions()
    #: write ExecuTorch's ETRecord here (``driver run --etrecord PATH``)
    etrecord: str | None = None
    #: ``False``: let go of the final program before ExecuTorch's runtime loads the
    #: ``.pte`` (a lower peak; ``CompileResult.program`` is then ``None``). ``driver run``
    #: does; the API keeps it unless asked not to.
    keep_program: bool = True
