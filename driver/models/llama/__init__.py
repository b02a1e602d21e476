"""Llama-family model sources, built with ExecuTorch's own Llama definition.

``params`` (params.json: its keys, their checks, the ModelArgs built from it),
``checkpoint`` (reading consolidated.pth, checking its tensors against the params),
``prequantized`` (recognising and building pre-quantized linears), ``build`` (the
model, its example inputs, decode steps and metadata: ``tiny_llama``, ``from_params``).
The random-checkpoint writer for tests and benchmarks is
``pteflow.testing.write_random_checkpoint``.
"""

from .build import (
    PROMPT_TOKENS,
    TINY_PARAMS,
    VERIFY_STEPS,
    decode_steps,
    from_params,
    random_state_dict,
    tiny_llama,
)
from .params import (
    CONTROLLED_KEYS,
    DEFAULT_MAX_SEQ_LEN,
    LLAMA_KEYS,
    REQUIRED_KEYS,
    check_params,
    model_args,
)

__all__ = [
    "CONTROLLED_KEYS",
    "DEFAULT_MAX_SEQ_LEN",
    "LLAMA_KEYS",
    "PROMPT_TOKENS",
    "REQUIRED_KEYS",
    "TINY_PARAMS",
    "VERIFY_STEPS",
    "check_params",
    "decode_steps",
    "from_params",
    "model_args",
    "random_state_dict",
    "tiny_llama",
]
