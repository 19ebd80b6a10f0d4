#!/usr/bin/env python3
# Golden control-vector fixtures from repeng (ControlVector.train, ControlModel) on Gemma-3-270M via Hugging Face transformers.
"""Writes the Gemma-3 repeng golden fixtures used by the steering tests.

Run by hand with the reference environment described in scripts/reference/README.md
(torch, transformers 5.x, gguf, scikit-learn and repeng):

    /work/venv-ref/bin/python scripts/reference/make_gemma3_repeng_fixtures.py \
        [--models .cache/models] [--out Tests/RepengSteeringTests/Fixtures/repeng]

Outputs (all small):
  gemma3_dataset.json                the contrastive pairs, [{"positive": ..., "negative": ...}]
  gemma3_directions_pca_center.json  repeng's pca_center directions, keyed by block index
  gemma3_directions_pca_diff.json    the same for pca_diff
  gemma3_generations.json            greedy continuations without control, with coefficient 0, +k and -k,
                                     plus the hidden-state norms seen while training

Same procedure as make_repeng_fixtures.py (SmolLM2), with these differences:

* gemma-3-270m is a base model and its GGUF has no chat template, so the pairs are plain
  text: "<instruction> <reply opening>" (one space), tokenized with the tokenizer defaults,
  which prepend <bos> (id 2). (A newline instead of the space gave much weaker directions:
  the clearest sign vote was 50/14, and block 3 was an exact 32/32 tie. With the space,
  blocks 10-17 vote 64/0; blocks 1-9 stay between 33/31 and 44/20, as the first principal
  component there is not the persona axis.)
* 64 pairs (the first 16 suffixes of the SmolLM2 dataset x the same 4 persona pairs).
* Default layers range(-1, -18, -1): blocks 17 ... 1, read from hidden_states[block + 1];
  block 17 is hidden_states[18], i.e. AFTER the final RMSNorm.
* The Gemma tokenizer pads on the LEFT with <pad> (id 0). repeng reads the last position
  (the last real token). transformers 5 builds position ids as arange over the padded
  length, so a left-padded string's positions start at the pad count; RoPE attention only
  depends on position differences, so this changes the hidden states only by rounding
  (the script reports how much, against unpadded single-string passes).
* pca_diff ties 32/32 in blocks 12-17: scikit-learn centres the pair differences, which
  removes their common mean; the first component left is nearly orthogonal to that mean
  (|cos| < 0.16) and puts happy/sad and delighted/gloomy on one side, joyful/depressed and
  cheerful/miserable on the other (all 16 suffixes each), so exactly half the pairs vote each
  way and the sign is the PCA's own (svd_flip: largest-magnitude entry positive).
  pca_center votes 64/0 there.
* X is 128 x 640 (pca_center) or 64 x 640 (pca_diff): max(shape) = 640 > 500, so
  scikit-learn's "auto" solver would be the randomized one; as for SmolLM2 the PCA is forced
  to svd_solver="full".
* Gemma-3's residual stream is large (last-token L2 norms on this dataset: ~1000 after
  block 1, ~3500 after block 5, ~11000 after block 11, ~33000 after block 16, ~100 after the
  final norm; see hidden_norms in gemma3_generations.json), so useful coefficients with
  normalize=False are in the hundreds, far above SmolLM2's 8.
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
from transformers import AutoModelForCausalLM, AutoTokenizer

import repeng
import repeng.extract
from repeng import ControlModel, ControlVector, DatasetEntry
from sklearn.decomposition import PCA as SklearnPCA

MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
THREADS = 2
BATCH_SIZE = 32

TEMPLATE = "Act as if you're extremely {persona}."
POSITIVE_PERSONAS = ["happy", "joyful", "cheerful", "delighted"]
NEGATIVE_PERSONAS = ["sad", "depressed", "miserable", "gloomy"]

# The first 16 reply openings of the SmolLM2 dataset (make_repeng_fixtures.py).
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
]

# Control band and strength for the generation fixture: blocks 10 ... 15 (six blocks in the
# upper middle of the 18-block model, where every pair votes the same way; block 11 is a
# global-attention block). Chosen by hand with --explore: at 400 both prompts turn cheerful
# (+) or depressed (-); at 800 still on topic but starting to repeat; at 1500 mostly
# repetition or markup.
CONTROL_LAYERS = list(range(10, 16))
COEFFICIENT = 400.0
VECTOR_METHOD = "pca_center"
MAX_NEW_TOKENS = 24

# (name, instruction or "", reply opening, repetition_penalty). The base model continues an
# instruction alone by repeating it, so each prompt ends in the opening of a reply.
PROMPTS = [
    ("today_feel", "", "Today I feel", 1.0),
    ("describe_life", "Describe your life in a few sentences.", "My life is", 1.0),
]


def plain(instruction: str, reply: str = "") -> str:
    return f"{instruction} {reply}"


def prompt_text(instruction: str, reply: str) -> str:
    return plain(instruction, reply) if instruction else reply


def make_dataset() -> list[DatasetEntry]:
    """Suffix-major, persona pairs inner (the order of repeng's README make_dataset)."""
    out = []
    for suffix in SUFFIXES:
        for p, n in zip(POSITIVE_PERSONAS, NEGATIVE_PERSONAS):
            out.append(DatasetEntry(
                positive=plain(TEMPLATE.format(persona=p), suffix),
                negative=plain(TEMPLATE.format(persona=n), suffix)))
    return out


def force_full_svd() -> None:
    """Make repeng's `PCA(n_components=1, whiten=False)` exact and deterministic."""
    def full_pca(*args, **kwargs):
        kwargs["svd_solver"] = "full"
        return SklearnPCA(*args, **kwargs)
    repeng.extract.PCA = full_pca


class HiddenRecorder:
    """Wraps repeng.extract.batched_get_hiddens to keep per-layer norm statistics and a copy of the states
    (pca_center centres the arrays in place afterwards)."""

    def __init__(self):
        self.original = repeng.extract.batched_get_hiddens
        self.last: dict[int, np.ndarray] = {}

    def __call__(self, *args, **kwargs):
        out = self.original(*args, **kwargs)
        self.last = {k: v.copy() for k, v in out.items()}
        return out

    def norms(self) -> dict:
        res = {}
        for layer in sorted(self.last):
            n = np.linalg.norm(self.last[layer].astype(np.float64), axis=1)
            res[str(layer)] = {"mean": round(float(n.mean()), 3), "min": round(float(n.min()), 3),
                               "max": round(float(n.max()), 3)}
        return res


def sign_votes(vector: ControlVector, hiddens: dict[int, np.ndarray]) -> dict:
    """Per block: [pairs with positive projected above negative, pairs with it below], as repeng's vote counts."""
    out = {}
    for layer in sorted(vector.directions):
        proj = repeng.extract.project_onto_direction(hiddens[layer], vector.directions[layer])
        pos, neg = proj[::2], proj[1::2]
        out[str(int(layer))] = [int((pos > neg).sum()), int((pos < neg).sum())]
    return out


def directions_json(vector: ControlVector, method: str, seconds: float, meta: dict, votes: dict) -> dict:
    return {
        "method": method,
        "model_type": vector.model_type,
        "training_seconds": round(seconds, 3),
        **meta,
        "sign_votes": votes,
        "sign_votes_note": "per block, [pairs whose positive string projects above its negative, pairs below] on the "
                           "final direction; repeng negates the PCA component only when strictly more pairs are "
                           "below, so an exact tie keeps the PCA's own sign (svd_flip: largest-magnitude entry "
                           "positive); a near tie makes the sign fragile",
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


@torch.no_grad()
def padding_effect(model, tokenizer, strings: list[str], layers: list[int], recorded: dict[int, np.ndarray]) -> dict:
    """Largest difference between repeng's left-padded batched states and unpadded single-string passes."""
    worst_abs = 0.0
    worst_rel = 0.0
    for i, s in enumerate(strings):
        x = tokenizer(s, return_tensors="pt")
        out = model(**x, output_hidden_states=True, use_cache=False, logits_to_keep=1)
        for layer in layers:
            single = out.hidden_states[layer + 1][0, -1].float().numpy()
            d = float(np.abs(single - recorded[layer][i]).max())
            worst_abs = max(worst_abs, d)
            worst_rel = max(worst_rel, d / float(np.abs(single).max()))
    return {"strings_checked": len(strings), "max_abs_diff": worst_abs,
            "max_diff_relative_to_vector_max_abs": worst_rel}


def main() -> int:
    root = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=str(root / ".cache/models"))
    ap.add_argument("--out", default=str(root / "Tests/RepengSteeringTests/Fixtures/repeng"))
    ap.add_argument("--coefficient", type=float, default=COEFFICIENT)
    ap.add_argument("--explore", action="store_true",
                    help="print continuations for several coefficients and bands, write nothing")
    args = ap.parse_args()

    t_all = time.perf_counter()
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    force_full_svd()
    recorder = HiddenRecorder()
    repeng.extract.batched_get_hiddens = recorder
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
        "dataset_file": "gemma3_dataset.json",
        "tokenizer_padding_side": tokenizer.padding_side,
        "add_special_tokens": "tokenizer defaults: <bos> (2) prepended to every string",
        "versions": versions,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": os.cpu_count(),
    }

    # Default layers (every block but block 0); ControlModel on the generation band.
    cmodel = ControlModel(model, CONTROL_LAYERS)
    vectors = {}
    norms = None
    pad_check = None
    for method in ["pca_center", "pca_diff"]:
        cmodel.reset()
        t0 = time.perf_counter()
        vectors[method] = ControlVector.train(cmodel, tokenizer, dataset, method=method, batch_size=BATCH_SIZE)
        seconds = time.perf_counter() - t0
        print(f"repeng train {method}: {seconds:.2f} s ({THREADS} threads, batch {BATCH_SIZE})")
        votes = sign_votes(vectors[method], recorder.last)
        print(f"  sign votes (positive above, below) per block: {votes}")
        if norms is None:
            norms = recorder.norms()
            print("last-token hidden-state L2 norms per block (mean): "
                  + ", ".join(f"{k}:{v['mean']:.0f}" for k, v in norms.items()))
            train_strs = [s for e in dataset for s in (e.positive, e.negative)]
            # Strings 0-31 form the first padded batch; check them against unpadded passes.
            pad_check = padding_effect(cmodel.model, tokenizer, train_strs[:BATCH_SIZE],
                                       sorted(recorder.last), recorder.last)
            print(f"left padding vs unpadded: {pad_check}")
        if not args.explore:
            (out_dir / f"gemma3_directions_{method}.json").write_text(
                json.dumps(directions_json(vectors[method], method, seconds, meta, votes)) + "\n")
    vector = vectors[VECTOR_METHOD]

    if args.explore:
        base = cmodel.unwrap()
        for band in [CONTROL_LAYERS, list(range(6, 14))]:
            cm = ControlModel(base, band)
            for name, question, reply, rp in PROMPTS:
                ids = tokenizer(prompt_text(question, reply)).input_ids
                cm.reset()
                print(f"band {band[0]}-{band[-1]} k=0 {name}: "
                      f"{tokenizer.decode(generate(cm, tokenizer, ids, rp), skip_special_tokens=True)!r}")
                for k in [400.0, 800.0, 1500.0]:
                    for m, vec in vectors.items():
                        for sign in [1, -1]:
                            cm.set_control(vec, sign * k)
                            gen = generate(cm, tokenizer, ids, rp)
                            print(f"band {band[0]}-{band[-1]} {m} k={sign*k:+.0f} {name}: "
                                  f"{tokenizer.decode(gen, skip_special_tokens=True)!r}", flush=True)
            base = cm.unwrap()
        return 0

    with open(out_dir / "gemma3_dataset.json", "w") as f:
        json.dump([{"positive": e.positive, "negative": e.negative} for e in dataset], f, indent=1, ensure_ascii=False)
        f.write("\n")

    k = args.coefficient
    cases = []
    for name, question, reply, rp in PROMPTS:
        prompt = prompt_text(question, reply)
        prompt_ids = [int(t) for t in tokenizer(prompt).input_ids]
        for label, coeff in [("no_control", None), ("zero", 0.0), ("positive", k), ("negative", -k)]:
            if coeff is None:
                cmodel.reset()
            else:
                cmodel.set_control(vector, coeff, normalize=False)
            gen = generate(cmodel, tokenizer, prompt_ids, rp)
            text = tokenizer.decode(gen, skip_special_tokens=True)
            print(f"{name} {label} coeff {coeff} rp {rp}: {text!r}")
            cases.append({
                "name": name, "control": label, "prompt": prompt, "prompt_ids": prompt_ids,
                "coefficient": coeff, "repetition_penalty": rp,
                "generated_ids": gen, "text": text,
                "stopped_at_eos": bool(gen and gen[-1] == tokenizer.eos_token_id),
            })
    cmodel.reset()
    by = {(c["name"], c["control"]): c["generated_ids"] for c in cases}
    zero_same = all(by[(n, "zero")] == by[(n, "no_control")] for n, _, _, _ in PROMPTS)
    (out_dir / "gemma3_generations.json").write_text(json.dumps({
        "vector": f"gemma3_directions_{VECTOR_METHOD}.json",
        "method": VECTOR_METHOD,
        "layers": CONTROL_LAYERS,
        "coefficient": k,
        "normalize": False,
        "max_new_tokens": MAX_NEW_TOKENS,
        "do_sample": False,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "prompt_format": "plain text '<instruction> <reply opening>' (or the opening alone), tokenized with the "
                         "defaults (<bos> prepended), as in the dataset",
        "note": "ControlModel adds coefficient * direction (float32, unit length) to the output of each block in "
                "`layers` at every position, prompt and generated tokens alike. control 'no_control' = "
                "ControlModel.reset(); 'zero' = set_control(vector, 0.0). Generation stops early at eos_token_id "
                "(included in generated_ids)",
        "zero_equals_no_control": zero_same,
        "hidden_norms": {
            "note": "L2 norms of the last-token hidden states repeng read for training (all 128 dataset strings), "
                    "keyed by block; block 17 is read after the final RMSNorm (hidden_states[18])",
            "per_block": norms,
        },
        "left_padding_vs_unpadded": dict(pad_check, note="repeng's left-padded batch (first 32 strings) vs each "
                                                         "string run alone, last token, all trained blocks"),
        "versions": versions,
        "cases": cases,
    }, indent=1, ensure_ascii=False) + "\n")
    total = sum(p.stat().st_size for p in out_dir.iterdir() if p.name.startswith("gemma3_"))
    print(f"wrote {out_dir} (gemma3_* files: {total} bytes) in {time.perf_counter() - t_all:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
