"""Tiny Hugging Face model directories for tests and benchmarks, built offline.

``write_hf_model(directory, "Qwen3ForCausalLM")`` has transformers build a random-weight
model of that architecture from a small config and ``save_pretrained`` it (config.json,
model.safetensors, generation_config.json), with a byte-level BPE tokenizer trained here
on a few sentences (tokenizer.json, tokenizer_config.json). No hub access. Needs the
``hf`` extra (transformers).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: What every tiny config shares: dim 64, 2 layers, 4 heads, 2 KV heads (GQA), vocab 320.
TINY: Mapping[str, Any] = {
    "vocab_size": 320,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
}
#: Per architecture, the feature each tiny model exercises.
FEATURES: Mapping[str, Mapping[str, Any]] = {
    # Llama 3 RoPE scaling and tied embeddings (as Llama 3.2 1B/3B, SmolLM2)
    "LlamaForCausalLM": {
        "tie_word_embeddings": True,
        "max_position_embeddings": 131072,
        "rope_parameters": {
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    },
    # q/k/v bias, untied output
    "Qwen2ForCausalLM": {"tie_word_embeddings": False, "rope_parameters": {"rope_theta": 1e6}},
    # qk-norm, a head_dim that is not dim / heads, tied embeddings
    "Qwen3ForCausalLM": {"tie_word_embeddings": True, "head_dim": 32},
    # fused qkv/gate_up, partial rotary, LongRoPE (as Phi-4-mini)
    "Phi3ForCausalLM": {
        "tie_word_embeddings": True,
        "original_max_position_embeddings": 256,
        "rope_parameters": {
            "rope_type": "longrope",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.5,
            "short_factor": [1.0 + 0.05 * i for i in range(4)],
            "long_factor": [1.5 + 0.1 * i for i in range(4)],
        },
    },
}
ARCHITECTURES = tuple(FEATURES)
CORPUS = (
    "Once upon a time there was a little robot who liked to compile models. "
    "The robot read the graph, moved the passes around and wrote a small file. "
    "Every morning it checked that the file still said sensible things. "
    "One day a large model arrived, and the robot had to be careful with memory."
)
BOS, EOS, EXTRA_EOS = "<|bos|>", "<|eos|>", "<|end|>"


def tokenizer(vocab_size: int = 320) -> Any:
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``CORPUS``: ids 0-2 are
    ``<|pad|>``, ``<|bos|>``, ``<|eos|>``, 3 is ``<|end|>``; encoding prepends BOS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|pad|>", BOS, EOS, EXTRA_EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([CORPUS] * 4, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, tok.token_to_id(BOS))]
    )
    return tok


def hf_config(architecture: str, **overrides: Any) -> Any:
    """The transformers config of a tiny ``architecture`` model (``TINY`` + its features)."""
    import transformers

    kind = architecture.replace("ForCausalLM", "Config")
    values = {**TINY, **FEATURES[architecture], **overrides}
    config = getattr(transformers, kind)(**values)
    config.architectures = [architecture]
    return config


def write_hf_model(
    directory: str | Path,
    architecture: str,
    *,
    seed: int = 0,
    eos_ids: tuple[int, ...] = (2, 3),
    shards: str | None = None,
    **overrides: Any,
) -> Path:
    """Write a random-weight ``architecture`` model with its tokenizer into ``directory``.

    Weights are drawn with ``seed`` (normal, std 0.2 for matrices, so greedy decoding is
    not dominated by one token; norms 1 + N(0, 0.1)). ``eos_ids`` go into
    generation_config.json; ``shards`` (``"20KB"``) splits the safetensors file.
    """
    import torch
    import transformers

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    config = hf_config(architecture, **overrides)
    torch.manual_seed(seed)
    model = getattr(transformers, architecture)(config).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=list(eos_ids), do_sample=False
    )
    kwargs = {"max_shard_size": shards} if shards else {}
    transformers.utils.logging.disable_progress_bar()  # no bars in a test run's output
    model.save_pretrained(out, **kwargs)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer(config.vocab_size),
        bos_token=BOS,
        eos_token=EOS,
        pad_token="<|pad|>",
    )
    fast.save_pretrained(out)
    return out
