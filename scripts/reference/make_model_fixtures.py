# Golden SmolLM2 fixtures (hidden states, logits, greedy generations, batching, config) from Hugging Face transformers loading the bundled GGUF.
"""Writes the SmolLM2-135M-Instruct golden fixtures used by the engine tests.

Run by hand with the reference environment described in scripts/reference/README.md:

    /work/venv-ref/bin/python scripts/reference/make_model_fixtures.py \
        --models .cache/models --out Tests/RepengEngineTests/Fixtures/model

Add ``--bench`` to also time a plain forward pass and a repeng-style batched
hidden-state extraction on this machine (printed only, nothing is written).

transformers reads the GGUF, dequantizes every tensor to float32 with gguf-py
and builds an ordinary ``LlamaForCausalLM``; all computation below is float32
on the CPU with two threads.

Hidden-state indexing (``output_hidden_states=True``): index 0 is the token
embedding output, index k (1 <= k < n_layers) is the output of block k-1, and
the last index (n_layers) is the output of the last block AFTER the final
RMSNorm. The raw output of the last block (before the final norm) is not in
that tuple; it is captured with a forward hook and stored separately.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
HIDDEN_INDICES = [1, 2, 10, 20, 29, 30]
ALL_POSITION_INDICES = [1, 30]
TOP_K_LOGITS = 50
THREADS = 2

# Prompts for the hidden-state / logit fixture: (name, text). Texts are tokenized
# with the tokenizer's defaults (add_special_tokens=True, which adds nothing for
# this model: the GGUF says tokenizer.ggml.add_bos_token = false).
HIDDEN_PROMPTS = [
    ("short_plain", "The capital of France is"),
    ("story", "Once upon a time, in a small village nestled between two mountains, there lived an old clockmaker who"),
    ("chatml", "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
               "Give me one tip for sleeping better.<|im_end|>\n<|im_start|>assistant\n"),
    ("code", "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n"),
    ("numbers", "Invoice #4471: 3 items at $19.99, total $59.97 (incl. 8.25% tax) due 2024-03-15."),
    ("non_english", "Le renard brun rapide saute par-dessus le chien paresseux. Größe, Straße, naïve café — 東京は日本の首都です。"),
    ("whitespace", "  leading spaces\n\n\ttabs and   multiple   spaces  "),
    ("emoji", "I love pizza 🍕 and sushi 🍣!!! 😀"),
    ("repeng_style", "[INST] Act as if you're extremely happy. [/INST] I feel"),
    ("long", "Photosynthesis is the process by which green plants, algae and some bacteria convert light energy "
             "into chemical energy. During this process, carbon dioxide and water are combined, using the energy "
             "of sunlight, to produce glucose and oxygen. The oxygen is released into the atmosphere, where"),
]
# Prompts whose every position is stored for ALL_POSITION_INDICES.
ALL_POSITION_PROMPTS = ["short_plain", "story"]
# Prompt whose embedding output (index 0) at the last position is stored.
EMBEDDING_PROMPT = "numbers"
# Prompts whose full last-position logits go into smollm2_logits.json.
FULL_LOGIT_PROMPTS = ["short_plain", "chatml"]

# Greedy generation cases: (name, chat messages or None, plain text or None, repetition_penalty or None).
GREEDY_CASES = [
    ("chat_capital", [{"role": "user", "content": "What is the capital of France?"}], None, None),
    ("chat_system", [{"role": "system", "content": "You are a concise assistant. Answer in one sentence."},
                     {"role": "user", "content": "Why is the sky blue?"}], None, None),
    ("plain_capital", None, "The capital of France is", None),
    ("plain_story", None, "Once upon a time", None),
    ("plain_code", None, "def square(x):\n    return", None),
    ("plain_rp11", None, "Water boils at", 1.1),
    ("chat_rp13", [{"role": "user", "content": "Write a short poem about the ocean."}], None, 1.3),
]

# Strings for the padded-batch vs one-at-a-time comparison (varied lengths so padding is real).
BATCH_STRINGS = [
    "Hi",
    "The capital of France is",
    "[INST] Act as if you're extremely happy. [/INST] I feel",
    "Once upon a time, in a small village nestled between two mountains, there lived an old clockmaker who",
    "def add(a, b):\n    return a + b\n",
    "Le renard brun rapide saute par-dessus le chien paresseux.",
]


# ---------------------------------------------------------------------------
# JSON output


def f32_list(values) -> list[float]:
    """float32 values as Python floats whose repr is the shortest string that round-trips the float32."""
    arr = np.asarray(values, dtype=np.float32).ravel()
    if not np.isfinite(arr).all():
        raise ValueError("non-finite value in fixture data")
    out = [float(str(x)) for x in arr]  # numpy str() of float32 = shortest unique decimal
    back = np.asarray(out, dtype=np.float64).astype(np.float32)
    if not np.array_equal(back, arr):
        raise ValueError("float32 round-trip failed")
    return out


def f32_base64(values) -> str:
    """float32 values as base64 of their little-endian bytes."""
    arr = np.ascontiguousarray(np.asarray(values, dtype="<f4").ravel())
    return base64.b64encode(arr.tobytes()).decode("ascii")


def to_json(obj, indent: int = 0) -> str:
    """Pretty JSON with lists of scalars kept on one line (keeps files small and diffable)."""
    pad = " " * indent
    inner = " " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {to_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if all(not isinstance(x, (dict, list, tuple)) for x in obj):
            return json.dumps(list(obj), ensure_ascii=False, separators=(",", ":"))
        items = [f"{inner}{to_json(v, indent + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def write_json(path: Path, obj) -> None:
    text = to_json(obj) + "\n"
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path} ({len(text.encode('utf-8')) / 1024:.1f} KiB)")


# ---------------------------------------------------------------------------
# Model set-up


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> dict:
    v = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}
    for pkg in ("gguf", "numpy", "tokenizers"):
        v[pkg] = importlib.metadata.version(pkg)
    return v


def load(models: Path):
    torch.set_num_threads(THREADS)
    tok = AutoTokenizer.from_pretrained(models, gguf_file=MODEL_FILE)
    # transformers >= 4.56 calls the argument `dtype`; older releases `torch_dtype`.
    try:
        model = AutoModelForCausalLM.from_pretrained(models, gguf_file=MODEL_FILE, dtype=torch.float32)
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(models, gguf_file=MODEL_FILE, torch_dtype=torch.float32)
    model.eval()
    return tok, model


def common_meta(models: Path) -> dict:
    return {
        "model_file": MODEL_FILE,
        "model_sha256": sha256(models / MODEL_FILE),
        "versions": versions(),
        "dtype": "float32",
        "device": "cpu",
        "torch_threads": THREADS,
        "generator": "scripts/reference/make_model_fixtures.py",
    }


@torch.no_grad()
def forward_single(model, ids: list[int]):
    """One unpadded sequence; returns (hidden_states tuple of [T, H], last-block pre-norm [T, H], logits [T, V])."""
    captured = {}

    def hook(_module, _inputs, output):
        captured["pre_norm"] = (output[0] if isinstance(output, tuple) else output).detach().clone()

    handle = model.model.layers[-1].register_forward_hook(hook)
    try:
        x = torch.tensor([ids], dtype=torch.long)
        out = model(input_ids=x, attention_mask=torch.ones_like(x), output_hidden_states=True, use_cache=False)
    finally:
        handle.remove()
    hs = tuple(h[0].float().numpy() for h in out.hidden_states)
    return hs, captured["pre_norm"][0].float().numpy(), out.logits[0].float().numpy()


# ---------------------------------------------------------------------------
# Fixtures


@torch.no_grad()
def make_hidden(tok, model, meta: dict, out_dir: Path) -> None:
    n_layers = model.config.num_hidden_layers
    prompts = []
    full_logits = []
    for name, text in HIDDEN_PROMPTS:
        ids = tok(text)["input_ids"]
        ids_plain = tok(text, add_special_tokens=False)["input_ids"]
        hs, pre_norm, logits = forward_single(model, ids)
        assert len(hs) == n_layers + 1
        # Sanity: the last hidden state is the final norm of the hook output, and the logits are lm_head of it.
        normed = model.model.norm(torch.from_numpy(pre_norm)).numpy()
        assert np.allclose(normed, hs[-1], atol=1e-5), "index 30 is not norm(last block output)"
        last = logits[-1]
        order = np.argsort(-last, kind="stable")[:TOP_K_LOGITS]
        entry = {
            "name": name,
            "text": text,
            "token_ids": ids,
            "token_ids_equal_without_special_tokens": ids == ids_plain,
            "num_tokens": len(ids),
            "last_position": {str(k): f32_list(hs[k][-1]) for k in HIDDEN_INDICES},
            "last_block_pre_norm_last_position": f32_list(pre_norm[-1]),
            "top_logits": [[int(i), f32_list([last[i]])[0]] for i in order],
            "argmax": int(order[0]),
            "max_abs_last_position": {str(k): float(np.abs(hs[k][-1]).max()) for k in HIDDEN_INDICES},
        }
        if name in ALL_POSITION_PROMPTS:
            entry["all_positions"] = {str(k): [f32_list(row) for row in hs[k]] for k in ALL_POSITION_INDICES}
        if name == EMBEDDING_PROMPT:
            entry["embedding_last_position"] = f32_list(hs[0][-1])
        if name in FULL_LOGIT_PROMPTS:
            full_logits.append({
                "name": name,
                "text": text,
                "token_ids": ids,
                "argmax": int(order[0]),
                "max": f32_list([last.max()])[0],
                "min": f32_list([last.min()])[0],
                "mean": float(last.astype(np.float64).mean()),
                "logits_f32le_base64": f32_base64(last),
            })
        prompts.append(entry)
        print(f"  hidden {name}: {len(ids)} tokens, argmax {order[0]} {tok.decode([int(order[0])])!r}")

    write_json(out_dir / "smollm2_hidden.json", {
        "meta": dict(meta, **{
            "add_special_tokens": True,
            "add_special_tokens_note": "tokenizer defaults; the GGUF sets tokenizer.ggml.add_bos_token=false, so no BOS is added",
            "hidden_state_indexing": "index 0 = embedding output; index k = output of block k-1 (k < num_layers); "
                                     "index num_layers = output of the last block after the final RMSNorm",
            "num_layers": n_layers,
            "hidden_indices": HIDDEN_INDICES,
            "all_position_indices": ALL_POSITION_INDICES,
            "magnitudes_note": "the residual stream carries a few very large activations (thousands, up to ~2.5e4 "
                               "at the first position, dimension 507); compare vectors with a tolerance relative "
                               "to their largest |value|",
            "last_block_pre_norm": "output of block num_layers-1 before the final norm (forward hook), last position",
            "top_logits": f"top {TOP_K_LOGITS} (token id, logit) of the last position, descending",
        }),
        "prompts": prompts,
    })
    write_json(out_dir / "smollm2_logits.json", {
        "meta": dict(meta, **{
            "encoding": "logits of the last position, vocab_size float32 values, little-endian, base64",
            "vocab_size": model.config.vocab_size,
        }),
        "prompts": full_logits,
    })


@torch.no_grad()
def make_greedy(tok, model, meta: dict, out_dir: Path) -> None:
    eos = model.generation_config.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    gen_config_before = model.generation_config.to_diff_dict()
    cases = []
    for name, messages, text, rp in GREEDY_CASES:
        if messages is not None:
            prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            ids = tok(prompt, add_special_tokens=False)["input_ids"]
        else:
            prompt = text
            ids = tok(prompt)["input_ids"]
        x = torch.tensor([ids], dtype=torch.long)
        kwargs = dict(
            do_sample=False, max_new_tokens=32, num_beams=1,
            temperature=None, top_p=None, top_k=None,
            eos_token_id=eos, pad_token_id=pad,
            return_dict_in_generate=True, output_scores=True,
        )
        if rp is not None:
            kwargs["repetition_penalty"] = rp
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), **kwargs)
        new = out.sequences[0, len(ids):].tolist()
        # Margin between the best and second-best processed score at each step: a tiny margin
        # means float noise in another implementation may legitimately pick the other token.
        margins = []
        for s in out.scores:
            top2 = torch.topk(s[0].float(), 2).values
            margins.append(float(top2[0] - top2[1]))
        stopped = bool(new and new[-1] == eos)
        case = {
            "name": name,
            "messages": messages,
            "prompt_text": prompt,
            "prompt_ids": ids,
            "repetition_penalty": rp if rp is not None else 1.0,
            "new_ids": new,
            "num_new_tokens": len(new),
            "stopped_on_eos": stopped,
            "text": tok.decode(new, skip_special_tokens=False),
            "text_skip_special": tok.decode(new, skip_special_tokens=True),
            "step_top2_margins": [round(m, 5) for m in margins],
            "min_top2_margin": round(min(margins), 6),
        }
        cases.append(case)
        print(f"  greedy {name} (rp={case['repetition_penalty']}): {len(new)} tokens, eos={stopped}, "
              f"min margin {case['min_top2_margin']:.4f}: {case['text']!r}")

    write_json(out_dir / "smollm2_greedy.json", {
        "meta": dict(meta, **{
            "settings": {
                "do_sample": False, "num_beams": 1, "max_new_tokens": 32,
                "eos_token_id": eos, "pad_token_id": pad, "use_cache": True,
                "temperature": None, "top_p": None, "top_k": None,
            },
            "generation_config_from_gguf": gen_config_before,
            "new_ids_note": "new tokens only; when generation stops on EOS the EOS id is the last entry",
            "repetition_penalty_note": "HF RepetitionPenaltyLogitsProcessor: for every distinct token id present anywhere "
                                       "in the sequence so far (prompt + generated), logit < 0 ? logit * p : logit / p; "
                                       "applied before the argmax",
            "margins_note": "step_top2_margins = best minus second-best processed score at each generated step",
            "chat_template_note": "chat prompts are apply_chat_template(messages, add_generation_prompt=True) "
                                  "tokenized with add_special_tokens=False; the template adds a default system "
                                  "message when none is given",
        }),
        "cases": cases,
    })


@torch.no_grad()
def make_batch(tok, model, meta: dict, out_dir: Path) -> None:
    n_idx = model.config.num_hidden_layers + 1
    singles = []
    for s in BATCH_STRINGS:
        ids = tok(s)["input_ids"]
        x = torch.tensor([ids])
        out = model(input_ids=x, attention_mask=torch.ones_like(x), output_hidden_states=True, use_cache=False)
        singles.append([h[0].numpy() for h in out.hidden_states])

    def run(side: str, explicit_positions: bool):
        saved = tok.padding_side
        tok.padding_side = side
        try:
            enc = tok(BATCH_STRINGS, padding=True, return_tensors="pt")
        finally:
            tok.padding_side = saved
        kwargs = {}
        if explicit_positions:
            pos = (enc["attention_mask"].cumsum(dim=1) - 1).clamp(min=0)
            kwargs["position_ids"] = pos
        out = model(**enc, output_hidden_states=True, use_cache=False, **kwargs)
        mask = enc["attention_mask"].bool()
        per_index_last = np.zeros(n_idx)
        per_index_all = np.zeros(n_idx)
        per_index_scale = np.zeros(n_idx)
        per_string_last = []
        for i, single in enumerate(singles):
            real = mask[i].nonzero(as_tuple=True)[0]
            worst = 0.0
            for k in range(n_idx):
                b = out.hidden_states[k][i][real].numpy()
                d_all = float(np.abs(b - single[k]).max())
                d_last = float(np.abs(b[-1] - single[k][-1]).max())
                per_index_all[k] = max(per_index_all[k], d_all)
                per_index_last[k] = max(per_index_last[k], d_last)
                per_index_scale[k] = max(per_index_scale[k], float(np.abs(single[k]).max()))
                worst = max(worst, d_last)
            per_string_last.append(worst)
        return {
            "padding_side": side,
            "explicit_position_ids": explicit_positions,
            "max_abs_diff_last_real_token": float(per_index_last.max()),
            "max_abs_diff_all_real_tokens": float(per_index_all.max()),
            "per_index_max_abs_diff_last_real_token": [float(x) for x in per_index_last],
            "per_index_max_abs_diff_all_real_tokens": [float(x) for x in per_index_all],
            "per_string_max_abs_diff_last_real_token": per_string_last,
            "max_rel_diff_all_real_tokens": float((per_index_all / np.maximum(per_index_scale, 1e-30)).max()),
            "per_index_max_abs_value": [float(x) for x in per_index_scale],
        }

    results = [run("right", False), run("left", False), run("left", True)]
    for r in results:
        print(f"  batch padding={r['padding_side']} explicit_pos={r['explicit_position_ids']}: "
              f"max |diff| last real token {r['max_abs_diff_last_real_token']:.3g}, "
              f"all real tokens {r['max_abs_diff_all_real_tokens']:.3g} "
              f"(relative to the largest |value| at that index: {r['max_rel_diff_all_real_tokens']:.3g})")
    magnitude = max(float(np.abs(s[k]).max()) for s in singles for k in range(n_idx))
    write_json(out_dir / "smollm2_batch.json", {
        "meta": dict(meta, **{
            "purpose": "informational: hidden states of the same strings run as one padded batch vs one at a time",
            "pad_token_id": tok.pad_token_id,
            "tokenizer_default_padding_side": tok.padding_side,
            "indices_compared": f"all hidden-state indices 0..{n_idx - 1}",
            "note": "without explicit position_ids, left padding shifts the rotary positions of the real tokens by "
                    "a constant; RoPE attention depends only on relative positions, so this changes results only "
                    "by rounding. Differences are dominated by the first token's very large activations (see "
                    "max_abs_hidden_value); compare relative to the magnitude of each vector",
            "max_abs_hidden_value": magnitude,
        }),
        "strings": BATCH_STRINGS,
        "token_counts": [len(tok(s)["input_ids"]) for s in BATCH_STRINGS],
        "results": results,
    })


def qk_gguf_to_hf(w: np.ndarray, n_head: int) -> np.ndarray:
    """Row order of a GGUF llama Q/K weight -> Hugging Face row order.

    Within each head of size d, GGUF row 2*i + j holds HF row j*(d/2) + i (i < d/2, j in {0, 1}),
    i.e. GGUF interleaves the two rotary halves so that adjacent rows form a rotary pair.
    """
    rows, cols = w.shape
    d = rows // n_head
    return w.reshape(n_head, d // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


@torch.no_grad()
def make_config(tok, model, meta: dict, models: Path, out_dir: Path) -> None:
    from gguf import GGUFReader
    from gguf.quants import dequantize

    cfg = model.config
    rope_theta = getattr(cfg, "rope_theta", None)
    if rope_theta is None:
        rope_theta = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta")

    reader = GGUFReader(str(models / MODEL_FILE))
    tensors = {t.name: t for t in reader.tensors}
    type_counts: dict[str, int] = {}
    for t in reader.tensors:
        type_counts[t.tensor_type.name] = type_counts.get(t.tensor_type.name, 0) + 1

    sd = model.state_dict()
    checks = []
    samples = {}
    pairs = [
        ("token_embd.weight", "model.embed_tokens.weight", None),
        ("blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight", None),
        ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", cfg.num_attention_heads),
        ("blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", cfg.num_key_value_heads),
        ("blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj.weight", None),
        ("blk.0.attn_output.weight", "model.layers.0.self_attn.o_proj.weight", None),
        ("blk.0.ffn_gate.weight", "model.layers.0.mlp.gate_proj.weight", None),
        ("blk.0.ffn_up.weight", "model.layers.0.mlp.up_proj.weight", None),
        ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight", None),
        ("blk.29.ffn_down.weight", "model.layers.29.mlp.down_proj.weight", None),
        ("output_norm.weight", "model.norm.weight", None),
    ]
    for gname, hname, heads in pairs:
        t = tensors[gname]
        deq = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        deq = deq.reshape(sd[hname].shape)
        if heads is not None:
            deq = qk_gguf_to_hf(deq, heads)
        hf = sd[hname].float().numpy()
        checks.append({
            "gguf": gname, "hf": hname, "gguf_type": t.tensor_type.name,
            "shape_hf": list(hf.shape), "gguf_ne": [int(x) for x in t.shape],
            "rows_permuted_for_rope": heads is not None,
            "exactly_equal": bool(np.array_equal(deq, hf)),
            "max_abs_diff": float(np.abs(deq - hf).max()),
        })
        if gname in ("token_embd.weight", "blk.0.ffn_down.weight", "blk.0.attn_q.weight"):
            # First 64 values of the tensor in GGUF (row-major ne0-fastest) order, dequantized.
            flat = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).ravel()
            samples[gname] = {"type": t.tensor_type.name, "first_64": f32_list(flat[:64])}

    write_json(out_dir / "smollm2_config.json", {
        "meta": meta,
        "model_type": cfg.model_type,
        "architecture": type(model).__name__,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": getattr(cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads),
        "rope_theta": rope_theta,
        "rope_parameters": getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None),
        "rms_norm_eps": cfg.rms_norm_eps,
        "hidden_act": cfg.hidden_act,
        "max_position_embeddings": cfg.max_position_embeddings,
        "tie_word_embeddings": bool(cfg.tie_word_embeddings),
        "lm_head_shares_embedding_storage": model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(),
        "vocab_size": cfg.vocab_size,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "pad_token_id": cfg.pad_token_id,
        "tokenizer": {
            "class": type(tok).__name__,
            "bos_token": tok.bos_token, "bos_token_id": tok.bos_token_id,
            "eos_token": tok.eos_token, "eos_token_id": tok.eos_token_id,
            "pad_token": tok.pad_token, "pad_token_id": tok.pad_token_id,
            "unk_token": tok.unk_token, "unk_token_id": tok.unk_token_id,
            "padding_side": tok.padding_side,
            "add_bos_token": getattr(tok, "add_bos_token", None),
            "add_eos_token": getattr(tok, "add_eos_token", None),
            "len": len(tok),
            "has_chat_template": bool(tok.chat_template),
        },
        "generation_config": model.generation_config.to_diff_dict(),
        "gguf_tensor_type_counts": type_counts,
        "dequantization_check": {
            "note": "transformers weight vs gguf-py dequantize() of the raw GGUF tensor (as float32); "
                    "Q/K rows reordered from GGUF's interleaved rotary pairs to HF's half-split order",
            "tensors": checks,
        },
        "dequantized_samples": samples,
    })


# ---------------------------------------------------------------------------
# Timing (printed only)


def bench_strings(tok, n: int, lo: int, hi: int, seed: int) -> list[str]:
    """Deterministic repeng-like strings whose token counts lie in [lo, hi]."""
    rng = random.Random(seed)
    adjectives = ["happy", "sad", "angry", "calm", "honest", "deceptive", "curious", "bored", "lazy", "excited"]
    words = ("the a of and to in is that it was for on are with as I his they be at one have this from or had by "
             "hot word but what some we can out other were all there when up use your how said an each she which "
             "do their time if will way about many then them write would like so these her long make thing see him "
             "two has look more day could go come did number sound no most people my over know water than call "
             "first who may down side been now find any new work part take get place made live where after back "
             "little only round man year came show every good me give our under name very through just form sentence "
             "great think say help low line differ turn cause much mean before move right boy old too same tell does "
             "set three want air well also play small end put home read hand port large spell add even land here "
             "must big high such follow act why ask men change went light kind off need house picture try us again "
             "animal point mother world near build self earth father").split()
    out = []
    while len(out) < n:
        target = rng.randint(lo, hi)
        adj = rng.choice(adjectives)
        s = f"[INST] Act as if you're extremely {adj}. [/INST] " + " ".join(rng.choice(words) for _ in range(target))
        ids = tok(s)["input_ids"]
        if len(ids) > target:
            s = tok.decode(ids[:target])
            ids = tok(s)["input_ids"]
        if lo <= len(ids) <= hi:
            out.append(s)
    return out


def clocks(t0: float | None = None, c0: float | None = None) -> tuple[float, float]:
    """(wall, process CPU) seconds now, or elapsed since (t0, c0). CPU time is less sensitive to a busy machine."""
    t, c = time.perf_counter(), time.process_time()
    return (t, c) if t0 is None or c0 is None else (t - t0, c - c0)


@torch.no_grad()
def bench(tok, model) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"timing on {os.cpu_count()} CPUs, torch threads = {torch.get_num_threads()}, load average {load:.1f}")
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(rng.integers(100, 40000, size=(64, 24))).long()
    mask = torch.ones_like(ids)
    model(input_ids=ids[:2], attention_mask=mask[:2], use_cache=False)  # warm-up

    t, c = clocks()
    model(input_ids=ids, attention_mask=mask, use_cache=False)
    dt, dc = clocks(t, c)
    print(f"forward 64 x 24 tokens, one batch of 64: {dt:.2f} s wall ({64 * 24 / dt:.0f} tokens/s), "
          f"{dc:.2f} CPU-s ({64 * 24 / dc:.0f} tokens per CPU-second)")

    t, c = clocks()
    for i in range(64):
        model(input_ids=ids[i:i + 1], attention_mask=mask[i:i + 1], use_cache=False)
    dt, dc = clocks(t, c)
    print(f"forward 64 x 24 tokens, one prompt at a time: {dt:.2f} s wall ({64 * 24 / dt:.0f} tokens/s), "
          f"{dc:.2f} CPU-s ({64 * 24 / dc:.0f} tokens per CPU-second)")

    strings = bench_strings(tok, 400, 10, 30, seed=1)
    counts = [len(tok(s)["input_ids"]) for s in strings]
    layers = list(range(-1, -model.config.num_hidden_layers, -1))  # repeng's default hidden_layers
    from repeng.extract import batched_get_hiddens

    t, c = clocks()
    hiddens = batched_get_hiddens(model, tok, strings, layers, batch_size=32)
    dt, dc = clocks(t, c)
    padded = sum(max(counts[p:p + 32]) * len(counts[p:p + 32]) for p in range(0, len(counts), 32))
    print(f"repeng batched_get_hiddens: 400 strings ({sum(counts)} real tokens, {padded} padded), "
          f"{len(layers)} layers, batch 32: {dt:.2f} s, {sum(counts) / dt:.0f} real tokens/s, "
          f"{padded / dt:.0f} padded tokens/s, {400 / dt:.1f} strings/s; {dc:.1f} CPU-s "
          f"({sum(counts) / dc:.0f} real tokens per CPU-second); shape {hiddens[-1].shape}")

    chat = tok.apply_chat_template([{"role": "user", "content": "Write a short poem about the ocean."}],
                                   add_generation_prompt=True, tokenize=False)
    x = tok(chat, add_special_tokens=False, return_tensors="pt")
    t, c = clocks()
    out = model.generate(**x, do_sample=False, max_new_tokens=64, min_new_tokens=64, temperature=None, top_p=None,
                         top_k=None, pad_token_id=tok.pad_token_id)
    dt, dc = clocks(t, c)
    n_new = out.shape[1] - x["input_ids"].shape[1]
    print(f"greedy generate: {x['input_ids'].shape[1]} prompt tokens + {n_new} new tokens in {dt:.2f} s wall "
          f"({n_new / dt:.1f} new tokens/s), {dc:.2f} CPU-s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path(".cache/models"), help="folder holding " + MODEL_FILE)
    ap.add_argument("--out", type=Path, default=Path("Tests/RepengEngineTests/Fixtures/model"))
    ap.add_argument("--bench", action="store_true", help="also print forward / extraction timings")
    ap.add_argument("--bench-only", action="store_true", help="print timings, write no fixtures")
    ap.add_argument("--bench-threads", type=int, default=THREADS,
                    help="torch threads for the timings (default %(default)s; on a busy machine 1 avoids "
                         "OpenMP threads spinning while they wait for each other)")
    args = ap.parse_args()

    if not (args.models / MODEL_FILE).is_file():
        print(f"error: {args.models / MODEL_FILE} not found; run scripts/bootstrap.sh", file=sys.stderr)
        return 1
    tok, model = load(args.models)
    if not args.bench_only:
        args.out.mkdir(parents=True, exist_ok=True)
        meta = common_meta(args.models)
        make_config(tok, model, meta, args.models, args.out)
        make_hidden(tok, model, meta, args.out)
        make_greedy(tok, model, meta, args.out)
        make_batch(tok, model, meta, args.out)
    if args.bench or args.bench_only:
        torch.set_num_threads(args.bench_threads)
        bench(tok, model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
