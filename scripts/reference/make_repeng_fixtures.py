#!/usr/bin/env python3
# Golden control-vector fixtures from repeng (ControlVector.train, ControlModel, export_gguf) on SmolLM2-135M-Instruct via Hugging Face transformers.
"""Writes the repeng golden fixtures used by the steering tests.

Run by hand with the reference environment described in scripts/reference/README.md
(torch, transformers 5.x, gguf, scikit-learn and repeng):

    /work/venv-ref/bin/python scripts/reference/make_repeng_fixtures.py \
        [--models .cache/models] [--out Tests/RepengSteeringTests/Fixtures/repeng]

Outputs (all small):
  dataset.json            the contrastive pairs, [{"positive": ..., "negative": ...}]
  directions_pca_diff.json, directions_pca_center.json
                          repeng's directions, keyed by repeng's layer ids (block indices)
  happy_pca_diff.gguf     the pca_diff vector written by repeng's own export_gguf
  generations.json        greedy continuations under control (+k, -k) and without it

Facts about repeng (read from the installed package's extract.py / control.py) that the
Swift implementation reproduces or deliberately improves on:

* read_representations normalises negative layer ids to block indices (L + i) BEFORE it
  trains, so ControlVector.directions is keyed 1 ... L-1 (29 keys for SmolLM2's 30 blocks),
  and export_gguf writes tensors direction.1 ... direction.29 (never direction.0).
  The default layers are range(-1, -num_hidden_layers, -1): every block but block 0.
* The batch-size keyword of read_representations is `batch_size` (default 32); the
  docstring of ControlVector.train calls it `max_batch_size`, which would be rejected.
* Hidden states: one forward pass per batch with output_hidden_states=True; layer i (block
  index) is read from hidden_states[i + 1]. In transformers 5, hidden_states[-1] is the
  final-norm output, so block L-1 is seen after the final RMSNorm.
* Padding: tokenizer(batch, padding=True) with the tokenizer's own padding side. The GGUF
  SmolLM2 tokenizer pads on the RIGHT with <|im_end|> (id 2). The token read is the last
  position whose attention_mask is 1 (attention_mask[i].nonzero()[-1]), i.e. the last real
  token; with right padding and causal attention padding cannot influence it. (With a
  left-padding tokenizer the positions would shift, since transformers 5 derives position
  ids from arange, not from the attention mask; repeng does not guard against that.)
  No chat template is applied: the strings already contain ChatML markup, which the
  tokenizer maps to single special-token ids; add_special_tokens adds nothing for SmolLM2.
* Methods: pca_diff fits PCA on h[::2] - h[1::2]; pca_center subtracts each pair's mean
  from both rows. PCA(n_components=1, whiten=False) then centres the columns and keeps
  components_[0] cast to float32 (unit length). The hidden states are float32 numpy
  arrays and scikit-learn keeps float32 input as float32, so the SVD itself runs in single
  precision. Before the sign vote, the "full" solver's sign makes the entry of largest
  magnitude positive (sklearn's svd_flip with u_based_decision=False).
* scikit-learn's default svd_solver="auto" picks "covariance_eigh" when samples >= 10 x
  features, "full" when max(shape) <= 500, and otherwise "randomized" (random_state=None,
  so results change from run to run). Here X is 128 x 576 (pca_diff) or 256 x 576
  (pca_center): max(shape) = 576 > 500, so repeng would use the RANDOMIZED solver. The
  script replaces repeng's PCA with one forced to svd_solver="full" (exact LAPACK SVD)
  so the fixture is reproducible.
* Sign vote: project h (all 2N rows) onto the float32 direction; compare each pair's
  positive with its negative; if strictly more pairs have positive < negative than
  positive > negative, negate. Ties keep the PCA sign. (For pca_center, `train = h`
  aliases the hidden states and is centred in place, so the vote sees pair-centred rows;
  pos - neg is unchanged by that, so the outcome is the same as on the raw rows.)
  On this dataset pca_diff votes are close in blocks 1-20 (block 16 is an exact 64/64
  tie, blocks 3 and 17 are 65/63): sklearn centres the pair differences, which removes
  their mean, so the first component there is not the happy/sad axis. Blocks 21-28
  vote 127-128 of 128; pca_center votes are clear in every block.
* export_gguf writes the tensors in the order of ControlVector.directions, which for
  trained vectors is descending (direction.29 first), and controlvector.layer_count as
  uint32; no other metadata.
* ControlModel wraps the chosen blocks; set_control(v, coeff) adds coeff * direction
  (float32) to the block output at every position, prompt and generated tokens alike
  (its padding mask is all ones for an unpadded single sequence). normalize=False here.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

import repeng
import repeng.extract
from repeng import ControlModel, ControlVector, DatasetEntry
from sklearn.decomposition import PCA as SklearnPCA

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
THREADS = 2
BATCH_SIZE = 32

TEMPLATE = "Act as if you're extremely {persona}."
POSITIVE_PERSONAS = ["happy", "joyful", "cheerful", "delighted"]
NEGATIVE_PERSONAS = ["sad", "depressed", "miserable", "gloomy"]

# Short openings of an assistant reply, written for this fixture. No digits, so the
# fixture does not depend on how numbers are pre-tokenized.
SUFFIXES = [
    "I think",
    "The weather today",
    "When I was young,",
    "My favourite thing about mornings",
    "Honestly,",
    "Let me tell you about",
    "Right now I feel",
    "The best part of my week",
    "Yesterday I went",
    "Whenever I see the ocean,",
    "People often ask me",
    "Looking out the window,",
    "Music makes me",
    "After a long day at work,",
    "My friends would say",
    "This morning",
    "Sometimes I wonder",
    "The first thing I noticed",
    "Walking through the park,",
    "If I'm being honest,",
    "Dinner last night",
    "The news this week",
    "Every time it rains,",
    "Well, you know,",
    "My dog",
    "On the way home",
    "I can't help thinking",
    "To be fair,",
    "Our garden",
    "The old house on the corner",
    "Coffee with friends",
    "Tomorrow will",
]

# Control band and strength for the generation fixture. Block indices 10 ... 21 (twelve
# blocks in the middle-upper part of the 30-block model, the way repeng's README controls
# ids -5 ... -17 of a 32-block model).
CONTROL_LAYERS = list(range(10, 22))
COEFFICIENT = 8.0
MAX_NEW_TOKENS = 24

# (name, user message, repetition_penalty)
PROMPTS = [
    ("doing_today", "What are you doing today?", 1.0),
    ("describe_life", "Describe your life in a few sentences.", 1.0),
    ("weekend", "How was your weekend?", 1.0),
    ("feel_rp", "Tell me how you feel about the future.", 1.1),
]


def chatml(instruction: str, reply: str = "") -> str:
    return f"<|im_start|>user\n{instruction}<|im_end|>\n<|im_start|>assistant\n{reply}"


def make_dataset() -> list[DatasetEntry]:
    """Suffix-major, persona pairs inner (the order of repeng's README make_dataset)."""
    out = []
    for suffix in SUFFIXES:
        for p, n in zip(POSITIVE_PERSONAS, NEGATIVE_PERSONAS):
            out.append(DatasetEntry(
                positive=chatml(TEMPLATE.format(persona=p), suffix),
                negative=chatml(TEMPLATE.format(persona=n), suffix)))
    return out


def force_full_svd() -> None:
    """Make repeng's `PCA(n_components=1, whiten=False)` exact and deterministic."""
    def full_pca(*args, **kwargs):
        kwargs["svd_solver"] = "full"
        return SklearnPCA(*args, **kwargs)
    repeng.extract.PCA = full_pca


def directions_json(vector: ControlVector, method: str, seconds: float, meta: dict) -> dict:
    return {
        "method": method,
        "model_type": vector.model_type,
        "training_seconds": round(seconds, 3),
        **meta,
        "layers": sorted(int(k) for k in vector.directions),
        "directions": {str(int(k)): [float(x) for x in vector.directions[k].astype(np.float32)]
                       for k in sorted(vector.directions)},
    }


def generate(cmodel, tokenizer, prompt_ids: list[int], repetition_penalty: float) -> list[int]:
    ids = torch.tensor([prompt_ids], dtype=torch.long)
    out = cmodel.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW_TOKENS,
        do_sample=False, repetition_penalty=repetition_penalty,
        pad_token_id=tokenizer.pad_token_id, temperature=None, top_p=None, top_k=None)
    return [int(t) for t in out[0, len(prompt_ids):]]


def main() -> int:
    root = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=str(root / ".cache/models"))
    ap.add_argument("--out", default=str(root / "Tests/RepengSteeringTests/Fixtures/repeng"))
    ap.add_argument("--coefficient", type=float, default=COEFFICIENT)
    ap.add_argument("--explore", action="store_true",
                    help="print continuations for several coefficients and bands, write nothing")
    args = ap.parse_args()

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    force_full_svd()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = AutoTokenizer.from_pretrained(args.models, gguf_file=MODEL_FILE)
    model = AutoModelForCausalLM.from_pretrained(args.models, gguf_file=MODEL_FILE, dtype=torch.float32)
    model.eval()
    n_blocks = model.config.num_hidden_layers
    print(f"model: {n_blocks} blocks, hidden {model.config.hidden_size}, "
          f"tokenizer padding side {tokenizer.padding_side!r}, pad {tokenizer.pad_token!r} ({tokenizer.pad_token_id})")

    dataset = make_dataset()
    lengths = [len(tokenizer(s).input_ids) for e in dataset for s in (e.positive, e.negative)]
    print(f"dataset: {len(dataset)} pairs, {min(lengths)}-{max(lengths)} tokens, {sum(lengths)} tokens in all")

    versions = {name: importlib.metadata.version(name)
                for name in ["repeng", "transformers", "torch", "scikit-learn", "numpy", "gguf"]}
    meta = {
        "model_file": MODEL_FILE,
        "batch_size": BATCH_SIZE,
        "torch_threads": THREADS,
        "svd_solver": "full",
        "pairs": len(dataset),
        "dataset_tokens": sum(lengths),
        "versions": versions,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
    }

    # Default layers (every block but block 0); ControlModel on the generation band.
    cmodel = ControlModel(model, CONTROL_LAYERS)
    vectors = {}
    for method in ["pca_diff", "pca_center"]:
        cmodel.reset()
        t0 = time.perf_counter()
        vectors[method] = ControlVector.train(cmodel, tokenizer, dataset, method=method, batch_size=BATCH_SIZE)
        seconds = time.perf_counter() - t0
        print(f"repeng train {method}: {seconds:.2f} s ({THREADS} threads, batch {BATCH_SIZE})")
        if not args.explore:
            (out_dir / f"directions_{method}.json").write_text(
                json.dumps(directions_json(vectors[method], method, seconds, meta)) + "\n")
    vector = vectors["pca_diff"]

    if args.explore:
        for k in [1.5, 2.0, 3.0, 4.0, 6.0, 8.0]:
            for name, question, rp in PROMPTS[:2]:
                ids = tokenizer(chatml(question)).input_ids
                for sign in [1, -1]:
                    cmodel.set_control(vector, sign * k)
                    gen = generate(cmodel, tokenizer, ids, rp)
                    print(f"k={sign*k:+.1f} {name}: {tokenizer.decode(gen)!r}")
        cmodel.reset()
        return 0

    with open(out_dir / "dataset.json", "w") as f:
        json.dump([{"positive": e.positive, "negative": e.negative} for e in dataset], f, indent=1, ensure_ascii=False)
        f.write("\n")
    vector.export_gguf(str(out_dir / "happy_pca_diff.gguf"))

    k = args.coefficient
    cases = []
    for name, question, rp in PROMPTS:
        prompt = chatml(question)
        prompt_ids = [int(t) for t in tokenizer(prompt).input_ids]
        for coeff in [0.0, k, -k]:
            if coeff == 0.0:
                cmodel.reset()
            else:
                cmodel.set_control(vector, coeff, normalize=False)
            gen = generate(cmodel, tokenizer, prompt_ids, rp)
            text = tokenizer.decode(gen, skip_special_tokens=True)
            print(f"{name} coeff {coeff:+.1f} rp {rp}: {text!r}")
            cases.append({
                "name": name, "prompt": prompt, "prompt_ids": prompt_ids,
                "coefficient": coeff, "repetition_penalty": rp,
                "generated_ids": gen, "text": text,
                "stopped_at_eos": bool(gen and gen[-1] == tokenizer.eos_token_id),
            })
    cmodel.reset()
    (out_dir / "generations.json").write_text(json.dumps({
        "vector": "directions_pca_diff.json",
        "layers": CONTROL_LAYERS,
        "normalize": False,
        "max_new_tokens": MAX_NEW_TOKENS,
        "do_sample": False,
        "eos_token_id": tokenizer.eos_token_id,
        "note": "generation stops early at eos_token_id (included in generated_ids)",
        "versions": versions,
        "cases": cases,
    }, indent=1, ensure_ascii=False) + "\n")
    total = sum(p.stat().st_size for p in out_dir.iterdir())
    print(f"wrote {out_dir} ({total} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
