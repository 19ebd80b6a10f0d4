# A tiny random Llama checkpoint with Llama 3 RoPE scaling, saved by transformers, with its golden outputs.
"""Writes Tests/RepengEngineTests/Fixtures/hf/llama3-rope/ (config.json, model.safetensors, expected.json).

Run by hand with the reference environment described in scripts/reference/README.md:

    /work/venv-ref/bin/python scripts/reference/make_rope_scaling_fixture.py \\
        --out Tests/RepengEngineTests/Fixtures/hf/llama3-rope

The checkpoint (2 blocks, hidden 64, 4 heads of 16, vocab 96, seeded, float32) uses
``rope_type: llama3`` with factor 8, low/high frequency factors 1 and 4 and an original context of
64, so that of its 8 frequencies some keep their value, some are divided by 8 and some are
interpolated (their factors are written to expected.json). The folder has no tokenizer: the
engine loads it for token ids only. expected.json holds, for one 48-token prompt, transformers'
hidden states (hidden_states[i], i = 0..2) and logits at every position, and the same with RoPE
scaling switched off, to show that the scaling moves the outputs.
"""
import argparse
import json
import math
from pathlib import Path

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM


def build(rope_parameters: dict) -> LlamaForCausalLM:
    cfg = LlamaConfig(
        vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, max_position_embeddings=512, rms_norm_eps=1e-5,
        tie_word_embeddings=False, rope_parameters=rope_parameters, bos_token_id=1, eos_token_id=2,
    )
    torch.manual_seed(1234)
    model = LlamaForCausalLM(cfg).to(torch.float32).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1) if p.dim() > 1 else p.copy_(1 + 0.1 * torch.randn_like(p))
    return model


def run(model, ids):
    with torch.no_grad():
        out = model(torch.tensor([ids]), output_hidden_states=True)
    return {
        "hidden": [h[0].tolist() for h in out.hidden_states],
        "logits": out.logits[0].tolist(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    scaling = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    model = build(scaling)
    model.save_pretrained(args.out, safe_serialization=True)
    for extra in ("generation_config.json",):
        (args.out / extra).unlink(missing_ok=True)

    ids = [(7 * i + 3) % 96 for i in range(48)]
    scaled = run(model, ids)

    plain = build({"rope_type": "default", "rope_theta": 10000.0})
    plain.load_state_dict(model.state_dict())
    unscaled = run(plain, ids)

    inv = model.model.rotary_emb.inv_freq.tolist()
    base = [1 / (10000.0 ** (2 * i / 16)) for i in range(8)]
    expected = {
        "about": "transformers %s, torch %s; see scripts/reference/make_rope_scaling_fixture.py"
                 % (transformers.__version__, torch.__version__),
        "ids": ids,
        "frequency_factors": [b / f for b, f in zip(base, inv)],
        "hidden": scaled["hidden"],
        "logits": scaled["logits"],
        "logits_without_scaling": unscaled["logits"],
    }
    (args.out / "expected.json").write_text(json.dumps(expected))
    diff = max(abs(a - b) for ra, rb in zip(scaled["logits"], unscaled["logits"]) for a, b in zip(ra, rb))
    print("frequency factors:", [round(x, 4) for x in expected["frequency_factors"]])
    print("max |logit change| from the scaling: %.4f" % diff)
    print("wrote", sorted(p.name for p in args.out.iterdir()))


if __name__ == "__main__":
    main()
