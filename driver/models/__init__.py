"""Model sources: what the driver compiles, with what verifies the result.

``loaded`` (``LoadedModel``, how messages name a source, ``fit_to_level``),
``callable`` (``MODULE:FUNCTION``: any model the user's code builds) and
``llama`` (the built-in tiny Llama and ``params.json`` [+ checkpoint]).
"""

from .callable import from_callable
from .llama import TINY_PARAMS, decode_steps, from_params, tiny_llama
from .loaded import LoadedModel, fit_to_level, source_label

__all__ = [
    "TINY_PARAMS",
    "LoadedModel",
    "decode_steps",
    "fit_to_level",
    "from_callable",
    "from_params",
    "source_label",
    "tiny_llama",
]
