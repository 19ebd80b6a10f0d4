#!/usr/bin/env python3
"""Same work as `repeng-bench`, measured on transformers (float32, PyTorch CPU), for comparison.

Run by hand in the reference venv (see scripts/reference/README.md):
    python scripts/bench/bench_transformers.py .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf \
        --threads 2 [--swift-json bench.json]
MODEL is a GGUF file or a Hugging Face folder. With --swift-json (the output of
`repeng-bench MODEL --json`) it prints the ratios as well; --load-only stops after loading
(load time and peak RSS).
"""
import argparse
import json
import os
import resource
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--strings", default="scripts/bench/strings.json")
    ap.add_argument("--batch", type=int, default=32, help="strings per padded batch for extraction")
    ap.add_argument("--swift-json")
    ap.add_argument("--skip-decode", action="store_true")
    ap.add_argument("--load-only", action="store_true", help="load the model, report load time and peak RSS, stop")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if os.path.isdir(a.model):
        d, kw = a.model, {}
    else:
        d, f = os.path.split(os.path.abspath(a.model))
        kw = {"gguf_file": f}
    res = {}

    t = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(d, **kw)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, **kw).eval()
    res["load_s"] = time.perf_counter() - t
    if a.load_only:
        res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, load only")
        for k, v in res.items():
            print(f"{k:34s} {v:10.2f}")
        return
    strings = json.load(open(a.strings))

    with torch.inference_mode():
        ids = []
        for s in strings:
            if len(ids) >= 512:
                break
            ids += tok(s + " ", add_special_tokens=False)["input_ids"]
        ids = torch.tensor([ids[:512]])
        model(ids[:, :64])
        best, bcpu = float("inf"), float("inf")
        for _ in range(3):
            t, c = time.perf_counter(), time.process_time()
            model(ids, logits_to_keep=1)
            best = min(best, time.perf_counter() - t)
            bcpu = min(bcpu, time.process_time() - c)
        res["prefill_512_tok_per_s"] = ids.shape[1] / best
        res["prefill_512_tok_per_cpu_s"] = ids.shape[1] / bcpu

        if not a.skip_decode:
            prompt = tok(strings[0], return_tensors="pt")
            t, c = time.perf_counter(), time.process_time()
            out = model.generate(**prompt, do_sample=False, max_new_tokens=128, min_new_tokens=128,
                                 pad_token_id=tok.eos_token_id)
            n = out.shape[1] - prompt["input_ids"].shape[1]
            res["decode_tok_per_s"] = n / (time.perf_counter() - t)
            res["decode_tok_per_cpu_s"] = n / (time.process_time() - c)

        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        total = sum(len(tok(s, add_special_tokens=False)["input_ids"]) for s in strings)
        def extract():
            for i in range(0, len(strings), a.batch):
                enc = tok(strings[i:i + a.batch], padding=True, return_tensors="pt", add_special_tokens=False)
                out = model(**enc, output_hidden_states=True, logits_to_keep=1)
                _ = [h[:, -1].clone() for h in out.hidden_states[1:]]
        extract()
        best, bcpu = float("inf"), float("inf")
        for _ in range(2):
            t, c = time.perf_counter(), time.process_time()
            extract()
            best = min(best, time.perf_counter() - t)
            bcpu = min(bcpu, time.process_time() - c)
        res[f"extract_{len(strings)}_strings_tok_per_s"] = total / best
        res[f"extract_{len(strings)}_strings_tok_per_cpu_s"] = total / bcpu
        res[f"extract_{len(strings)}_strings_s"] = best
    res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, threads {a.threads}")
    for k, v in res.items():
        print(f"{k:34s} {v:10.1f}")
    if a.swift_json:
        sw = json.load(open(a.swift_json))
        print("\nratio repeng-bench / transformers (higher is better for speed, lower for time and memory)")
        for k, v in res.items():
            if k in sw and v:
                print(f"{k:34s} {sw[k] / v:10.2f}x")


if __name__ == "__main__":
    main()
