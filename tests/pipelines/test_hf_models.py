"""Each supported Hugging Face architecture, end to end, against transformers' own model:
the xnnpack_default .pte's logits over 20 decode steps, ``driver generate``'s greedy ids
against ``generate``, the runner metadata in the .pte, and the README's acceptance
commands (``driver run --hf DIR --pipeline xnnpack_8da4w`` then ``driver generate``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import pteflow
from pteflow.driver.cli import main
from pteflow.driver.pte_metadata import read_pte_metadata

transformers = pytest.importorskip("transformers")
from pteflow.hf_testing import ARCHITECTURES, write_hf_model  # noqa: E402

pytestmark = pytest.mark.slow

PROMPT = "Once upon a time"
NEW_TOKENS = 24
STEPS = 20  # decode steps compared with transformers' forward


@pytest.fixture(scope="module", params=ARCHITECTURES)
def compiled(request, tmp_path_factory) -> tuple[Path, Path]:
    """(the HF directory, its xnnpack_default .pte), once per architecture."""
    root = tmp_path_factory.mktemp(request.param)
    path = write_hf_model(root / "model", request.param)
    pte = root / "m.pte"
    result = pteflow.compile(
        hf=path, pipeline="xnnpack_default", output=pte, max_seq_len=64, cache=False
    )
    assert result.ok and result.verification.ok
    return path, pte


def _hf(path: Path):
    return transformers.AutoModelForCausalLM.from_pretrained(path).eval()


def test_the_pte_matches_transformers_forward_over_decode_steps(compiled):
    from pteflow.ir.evaluate import load_runtime_program

    path, pte = compiled
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 320, (STEPS,), generator=gen).tolist()
    with torch.no_grad():
        want = _hf(path)(torch.tensor([tokens])).logits[0]
    forward = load_runtime_program(pte.read_bytes()).load_method("forward")
    worst = 0.0
    for pos, token in enumerate(tokens):
        got = forward.execute([torch.tensor([[token]]), torch.tensor([pos])])[0]
        worst = max(worst, float((got.reshape(-1) - want[pos]).abs().max()))
    assert worst <= 1e-4, worst


def test_the_pte_holds_the_runner_metadata(compiled):
    path, pte = compiled
    meta = read_pte_metadata(pte)
    config = transformers.AutoConfig.from_pretrained(path)
    generation = transformers.GenerationConfig.from_pretrained(path)
    assert meta["get_bos_id"] == config.bos_token_id
    assert meta["get_eos_ids"] == list(generation.eos_token_id) == [2, 3]
    assert meta["get_max_seq_len"] == 64 and meta["use_kv_cache"] is True


def _generate(capsys, pte: Path, tokenizer: Path) -> tuple[list[int], list[int], str]:
    capsys.readouterr()
    code = main(
        [
            "generate",
            str(pte),
            "--tokenizer",
            str(tokenizer),
            "--prompt",
            PROMPT,
            "--max-new-tokens",
            str(NEW_TOKENS),
            "--show-ids",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    prompt = re.search(r"^prompt ids: \[(.*)\]$", out, re.M)
    new = re.search(r"^new ids: \[(.*)\]$", out, re.M)
    assert prompt and new and re.search(r"decode: \d+ tokens, [\d.]+ tok/s", out)
    ids = [[int(x) for x in m.group(1).split(", ")] for m in (prompt, new)]
    return ids[0], ids[1], out


def test_driver_generate_greedy_equals_transformers_generate(compiled, capsys):
    path, pte = compiled
    prompt_ids, new_ids, out = _generate(capsys, pte, path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    assert prompt_ids == tokenizer(PROMPT).input_ids
    with torch.no_grad():
        want = (
            _hf(path)
            .generate(torch.tensor([prompt_ids]), max_new_tokens=NEW_TOKENS, do_sample=False)[
                0, len(prompt_ids) :
            ]
            .tolist()
        )
    assert new_ids == want and len(new_ids) >= 20
    assert out.startswith(PROMPT + tokenizer.decode(new_ids[:3])[:1])


def test_the_readme_commands_with_8da4w(compiled, capsys, tmp_path):
    path, _ = compiled
    pte = tmp_path / "m.pte"
    code = main(
        [
            "run",
            "--hf",
            str(path),
            "--pipeline",
            "xnnpack_8da4w",
            "-o",
            str(pte),
            "--max-seq-len",
            "64",
            "--no-cache",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "verify: max abs diff" in out and ": ok" in out, out
    assert "metadata: " in out and "get_eos_ids=[2, 3]" in out
    _, new_ids, _ = _generate(capsys, pte, path)
    assert len(new_ids) >= 1
