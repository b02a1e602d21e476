"""From options to the things a run works on: pass specs, passes, the model, the cache.

Shared by ``pteflow.compile``, ``plan``, ``bisect`` and ``check_coverage``
(``driver/api.py``); nothing here prints.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from pteflow.ir.errors import ModelError, UserError

from .options import CacheOptions, Echo, ModelOptions, PipelineOptions


def specs_for(options: PipelineOptions) -> tuple[Any, list]:
    """The pipeline (``None`` for a pass list) and its enabled pass specs, overrides applied.

    Raises:
        UserError: neither a pipeline nor a pass list; an unknown pipeline, bad override.
    """
    from . import pipelines
    from .spec import apply_overrides, enabled_only, parse_pass_list

    if options.pipeline:
        pipe = pipelines.load(options.pipeline)
        specs = list(pipe.passes)
    elif options.passes:
        pipe = None
        specs = parse_pass_list(options.passes)
    else:
        raise UserError(
            "give a pipeline: --pipeline NAME (driver list pipelines) or "
            "--passes a,b,c (driver list passes)"
        )
    if any(o.startswith("pt2e-calibrate.") for o in options.overrides) and not any(
        s.name == "pt2e-calibrate" for s in specs
    ):
        raise UserError(
            "calibration options need a pipeline with pt2e-calibrate (xnnpack_pt2e, "
            "qnn_default); this one has none"
        )
    return pipe, enabled_only(apply_overrides(specs, options.overrides))


def build(
    specs: list, plugins: Sequence[str] = (), *, no_delegate: bool = False
) -> tuple[dict, list]:
    """The registry (with ``plugins``) and the passes ``specs`` name."""
    from .spec import build_passes

    return build_passes(specs, plugins, no_delegate=no_delegate)


def dropped_for_delegation(specs: list, kept: list) -> list[str]:
    """The names of the specs ``--no-delegate`` left out."""
    names = {p.name for p in kept}
    return [s.name for s in specs if s.name not in names]


def source_facts(pipe: Any) -> set:
    """Facts the model source establishes, known without loading it.

    The Llama sources (the default tiny Llama, --params) build the KV cache.
    """
    from pteflow.ir import facts

    if pipe is not None and pipe.model not in (None, "tiny-llama"):
        return set()
    return {facts.KV_CACHE}


def open_cache(options: CacheOptions, warn: Echo) -> Any:
    """The pass cache the options describe (``warn`` gets its one-line warnings)."""
    from pteflow.passes.cache import PassCache, parse_size

    return PassCache(options.directory, max_bytes=parse_size(options.size), log=warn)


def where(model: ModelOptions, pipe: Any) -> str:
    """How messages name the model source."""
    from .models import source_label

    if model.given and model.label() is None:
        return "the model"
    return source_label(model.label(), pipe)


def load_model(model: ModelOptions, pipe: Any) -> Any:
    """The model the run compiles: ``source``, else ``params``, else ``hf``, else the
    pipeline's, else the tiny Llama, with ``metadata`` (``--metadata``) applied. The
    pipeline's ``model_options`` (e.g. static shapes for QNN) apply to Llama sources.

    Raises:
        UserError: conflicting or ill-typed options; ModelError: the model does not load.
    """
    from .models.metadata import parse_metadata, with_metadata

    extra = parse_metadata(model.metadata) if model.metadata is not None else {}
    return with_metadata(_load_model(model, pipe), extra)


def _load_model(model: ModelOptions, pipe: Any) -> Any:
    if model.hf and (model.given or model.params or model.checkpoint):
        raise UserError("give one model source: --hf, --model or --params, not several")
    if model.given and (model.params or model.checkpoint):
        raise UserError("give either --model or --params/--checkpoint, not both")
    if model.checkpoint and not model.params:
        raise UserError("--checkpoint needs --params (the params.json it was trained with)")
    lengths = {
        k: v
        for k, v in (("max_seq_len", model.max_seq_len), ("max_context_len", model.max_context_len))
        if v is not None
    }
    for key, value in lengths.items():
        if value <= 0:
            flag = "--" + key.replace("_", "-")
            raise UserError(f"{flag} must be a positive integer, got {value}")
    from .models import from_callable, llama, source_label

    if model.given:
        if lengths:
            raise UserError(
                "--max-seq-len/--max-context-len apply to Llama models (--params, --hf or the "
                "default)"
            )
        if isinstance(model.source, str):
            return from_callable(model.source, where=source_label(model.source, pipe))
        from .models.callable import from_made

        return from_made(copy.deepcopy(model.source), where(model, pipe), "the given model")
    options = {**(pipe.model_options if pipe is not None else {}), **lengths}
    if model.params:
        return llama.from_params(model.params, model.checkpoint, **options)
    if model.hf:
        from .models.hf import from_hf

        return from_hf(model.hf, **options)
    source = pipe.model if pipe is not None and pipe.model else "tiny-llama"
    if source != "tiny-llama":
        return from_callable(source, where=source_label(None, pipe))
    return llama.tiny_llama(**options)


def check_model_source(source: Any) -> None:
    """Refuse a model source of the wrong kind before any work (the API's argument)."""
    if source is None or isinstance(source, (str, tuple)):
        return
    from pteflow.ir import Program

    if not isinstance(source, Program):
        raise ModelError(
            f"model: expected None, 'tiny-llama', 'MODULE:FUNCTION', "
            f"(nn.Module, example_inputs[, dynamic_shapes]) or a Program, "
            f"got {type(source).__name__}"
        )
