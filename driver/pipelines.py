"""Pipelines as data: TOML files naming passes and their options.

    description = "fp32 Llama, KV cache, custom SDPA, XNNPACK"
    model = "tiny-llama"          # default model source (optional)
    tolerance = 1e-4              # max abs output difference --verify accepts against its
                                  # reference: eager, or the quantized eager model (the
                                  # program after the last quantizing pass) when a pass
                                  # quantizes (default 1e-4, 0.05 when quantized)
    verify = true                 # --verify on by default
    no_delegate_tolerance = 1e-5  # --no-delegate: max abs diff vs the quantized program
    model_options = { enable_dynamic_shape = false }   # options of the Llama source

    [[passes]]
    name = "export"

    [[passes]]
    name = "to-edge"
    skip_dim_order = true         # every other key is an option of the pass

Any pass may say ``enabled = false``: it is left out unless ``--set PASS.enabled=true``
turns it on (for optional passes such as ``split-mha-to-sha`` in ``qnn_default``).

The order in the file does not decide the run order (the manager does);
it only breaks ties and orders the ``ordered`` passes (partitioners).
Named pipelines ship with their backend, in ``pteflow/backends/<name>/pipelines/``
(a pipeline's name is its file's name; two backends may not ship one name).
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from pteflow.ir.errors import ConflictError, UnknownNameError, UserError, closest

from .spec import PassSpec

_KEYS = {
    "description",
    "model",
    "model_options",
    "tolerance",
    "no_delegate_tolerance",
    "verify",
    "passes",
}
#: The model source that is not a ``MODULE:FUNCTION``.
BUILTIN_MODEL = "tiny-llama"
#: What ``model_options`` may set on a Llama source (tiny-llama, --params).
MODEL_OPTIONS = {"enable_dynamic_shape": bool, "use_kv_cache": bool}


@attrs.frozen
class Pipeline:
    name: str
    description: str
    passes: tuple[PassSpec, ...]
    model: str | None = None
    tolerance: float | None = None  # None: 1e-4, or 0.05 for a quantizing pipeline
    verify: bool = True
    no_delegate_tolerance: float = 1e-5
    model_options: dict[str, Any] = attrs.field(factory=dict)


def _named_files() -> dict[str, resources.abc.Traversable]:
    """Name -> file of every shipped pipeline: ``backends/<name>/pipelines/*.toml``.

    Read as package data: no backend module is imported.
    """
    found: dict[str, resources.abc.Traversable] = {}
    for backend in sorted(resources.files("pteflow.backends").iterdir(), key=lambda e: e.name):
        folder = backend / "pipelines"
        if backend.name.startswith(("_", ".")) or not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.name.endswith(".toml"):
                name = entry.name[:-5]
                if name in found:
                    raise ConflictError(f"pipeline {name!r} ships twice; rename one of them")
                found[name] = entry
    return dict(sorted(found.items()))


def named_pipelines() -> dict[str, str]:
    """Name -> description of every pipeline that ships with pteflow."""
    return {
        name: parse(entry.read_text(), name).description for name, entry in _named_files().items()
    }


def parse(text: str, name: str) -> Pipeline:
    """Read a pipeline from TOML text; ``name`` is used in messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"pipeline {name}: not valid TOML: {e}") from None
    unknown = set(data) - _KEYS
    if unknown:
        raise UnknownNameError(f"key in pipeline {name}", sorted(unknown)[0], _KEYS)
    raw = data.get("passes")
    if not isinstance(raw, list) or not raw:
        raise UserError(f"pipeline {name}: needs a non-empty [[passes]] list")
    specs = []
    for i, entry in enumerate(raw, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise UserError(f'pipeline {name}: pass #{i} needs a name = "..."')
        options = {k: v for k, v in entry.items() if k != "name"}
        specs.append(PassSpec(entry["name"], options))
    model_options = data.get("model_options", {})
    if not isinstance(model_options, dict):
        raise UserError(f"pipeline {name}: model_options must be a table, e.g. {{ key = value }}")
    for key, value in model_options.items():
        if key not in MODEL_OPTIONS:
            raise UnknownNameError(f"model option in pipeline {name}", key, MODEL_OPTIONS)
        if not isinstance(value, MODEL_OPTIONS[key]):
            raise UserError(
                f"pipeline {name}: model_options.{key} must be "
                f"{MODEL_OPTIONS[key].__name__}, got {value!r}"
            )
    return Pipeline(
        name=name,
        description=_typed(data, "description", str, "", name),
        passes=tuple(specs),
        model=_model(data, name),
        tolerance=_tolerance(data, "tolerance", None, name),
        verify=_typed(data, "verify", bool, True, name),
        no_delegate_tolerance=_tolerance(data, "no_delegate_tolerance", 1e-5, name),
        model_options=dict(model_options),
    )


_TYPE_NAMES = {str: 'text ("...")', bool: "true or false", float: "a number"}


def _typed(data: dict[str, Any], key: str, ty: type, default: Any, name: str) -> Any:
    """``data[key]`` if it has type ``ty`` (a TOML integer counts as a number)."""
    value = data.get(key, default)
    ok = isinstance(value, ty) and not (ty is not bool and isinstance(value, bool))
    if ty is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        raise UserError(
            f"pipeline {name}: {key} must be {_TYPE_NAMES[ty]}, got {value!r} "
            f"({type(value).__name__})"
        )
    return value


def _tolerance(data: dict[str, Any], key: str, default: float | None, name: str) -> Any:
    """A tolerance key: a finite number >= 0, or ``default`` (None: the run decides)."""
    if data.get(key) is None:
        return default
    value = _typed(data, key, float, default, name)
    if not (0 <= value < float("inf")):
        raise UserError(f"pipeline {name}: {key} must be a finite number >= 0, got {value!r}")
    return float(value)


def _model(data: dict[str, Any], name: str) -> str | None:
    """The ``model`` key: ``tiny-llama`` or ``MODULE:FUNCTION`` (loaded only when run)."""
    if "model" not in data:
        return None
    model = _typed(data, "model", str, None, name)
    module, colon, func = model.rpartition(":")
    if model != BUILTIN_MODEL and not (colon and module and func):
        near = closest(model, [BUILTIN_MODEL])
        hint = f"did you mean {near[0]}? " if near else ""
        raise UserError(
            f"pipeline {name}: unknown model {model!r}; {hint}give {BUILTIN_MODEL!r} or "
            "MODULE:FUNCTION (e.g. mypkg.models:build or path/to/file.py:build)"
        )
    return str(model)


def load(name_or_path: str) -> Pipeline:
    """A named pipeline, or a pipeline file (any name ending in .toml).

    Raises:
        UnknownNameError: no such named pipeline (closest names listed).
        UserError: the file is missing, unreadable or malformed.
    """
    if name_or_path.endswith(".toml"):
        path = Path(name_or_path)
        try:
            text = path.read_text()
        except OSError as e:
            raise UserError(f"cannot read pipeline file {path}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise UserError(f"pipeline {path.name}: not UTF-8 text ({e.reason})") from None
        return parse(text, path.name)
    entry = _named_files().get(name_or_path)
    if entry is None:
        if Path(name_or_path).exists():
            raise UserError(
                f"--pipeline {name_or_path}: a pipeline file's name must end in .toml "
                "(other names are named pipelines: driver list pipelines)"
            )
        raise UnknownNameError(
            "pipeline", name_or_path, named_pipelines(), see="driver list pipelines"
        )
    return parse(entry.read_text(), name_or_path)
