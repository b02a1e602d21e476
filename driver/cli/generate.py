"""``driver generate``: run an LLM ``.pte`` on a prompt (``pteflow.driver.generate``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .args import debug_flag, say

EXAMPLES = """\
examples:
  driver run --hf DIR --pipeline xnnpack_8da4w -o m.pte
  driver generate m.pte --tokenizer DIR --prompt "Once upon a time"
  driver generate m.pte --tokenizer DIR/tokenizer.json --prompt "Hi" --temperature 0.8 --top-p 0.9
"""


def add_parser(sub: Any) -> None:
    gen = sub.add_parser(
        "generate",
        help="run an LLM .pte on a prompt",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate text with a KV-cache LLM .pte in executorch.runtime, stopping "
        "at the .pte's EOS ids (get_eos_ids); prints the text and tokens per second.",
    )
    gen.add_argument("pte", metavar="PTE", help="the .pte (from driver run)")
    gen.add_argument(
        "--tokenizer",
        required=True,
        metavar="DIR|FILE",
        help="the model's tokenizer: tokenizer.json, tokenizer.model, or a directory "
        "holding one (e.g. the --hf directory)",
    )
    gen.add_argument("--prompt", required=True, help="the text to continue")
    gen.add_argument("--max-new-tokens", type=int, default=64, metavar="N", help="default: 64")
    gen.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        metavar="T",
        help="0 (the default) is greedy; above 0 samples",
    )
    gen.add_argument(
        "--top-p", type=float, default=1.0, metavar="P", help="nucleus sampling (default: 1)"
    )
    gen.add_argument("--seed", type=int, default=0, help="the sampling seed (default: 0)")
    gen.add_argument(
        "--show-ids", action="store_true", help="also print the prompt's and the new token ids"
    )
    debug_flag(gen)


def main(args: argparse.Namespace) -> int:
    from ..generate import generate

    started = [False]

    def stream(text: str) -> None:
        if not started[0]:
            sys.stdout.write(args.prompt)
            started[0] = True
        sys.stdout.write(text)
        sys.stdout.flush()

    result = generate(
        args.pte,
        args.tokenizer,
        args.prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        on_text=stream,
    )
    if not started[0]:
        sys.stdout.write(args.prompt + result.text)
    say()
    if args.show_ids:
        say(f"prompt ids: {result.prompt_ids}")
        say(f"new ids: {result.new_ids}")
    say(result.stats_line())
    return 0
