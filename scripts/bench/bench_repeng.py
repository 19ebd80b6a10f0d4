#!/usr/bin/env python3
"""repeng's training time on the same dataset as `repeng-bench MODEL --train`, for comparison.

Run by hand in the reference venv (see scripts/reference/README.md):
    .build/release/repeng-bench .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf --train \
        --dump-dataset /tmp/train.json --json > /tmp/train-swift.json
    python scripts/bench/bench_repeng.py .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf \
        --dataset /tmp/train.json --threads 2 --swift-json /tmp/train-swift.json
The model is loaded before timing; training uses repeng's defaults (every layer but block 0,
method pca_diff, batch size 32).
"""
import argparse
import json
import os
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from repeng import ControlModel, ControlVector, DatasetEntry


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--swift-json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    d, f = os.path.split(os.path.abspath(a.model))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    base = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    L = base.config.num_hidden_layers
    model = ControlModel(base, list(range(-1, -L, -1)))
    data = [DatasetEntry(positive=e["positive"], negative=e["negative"]) for e in json.load(open(a.dataset))]
    times, cpu = [], []
    for _ in range(2):
        t, c = time.perf_counter(), time.process_time()
        ControlVector.train(model, tok, data, batch_size=a.batch_size, method="pca_diff")
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    best = min(times)
    print(f"repeng train: {len(data)} pairs x {L - 1} layers, {a.threads} threads: best of 2 = {best:.2f} s"
          f" ({min(cpu):.2f} CPU-s)")
    if a.swift_json:
        sw = json.load(open(a.swift_json))
        for k in ("train_s", "train_s_shared_prefix"):
            if k in sw:
                print(f"{k:24s} repeng-bench {sw[k]:.2f} s -> {best / sw[k]:.2f}x faster than repeng")
        for k in ("train_cpu_s", "train_cpu_s_shared_prefix"):
            if k in sw:
                print(f"{k:24s} repeng-bench {sw[k]:.2f} CPU-s -> {min(cpu) / sw[k]:.2f}x less CPU than repeng")


if __name__ == "__main__":
    main()
