#!/usr/bin/env python3
# A synthetic 1B-class model for benchmarks: TinyLlama-1.1B's shape with random weights, written as Q4_0 or Q8_0 GGUF.
"""Writes a llama-architecture GGUF with TinyLlama-1.1B's shape (22 blocks, hidden 2048, 32 heads,
4 KV heads, FFN 5632, vocabulary 32,000, context 2048, untied output) and random weights
(normal, std 0.02; norms 1), the matrices quantized to Q4_0 or Q8_0 with gguf-py. The text it
writes is meaningless; it exists to measure load, memory and decode speed at 1B scale beside
llama.cpp on the same file.

The tokenizer is the bundled SmolLM2's byte-level BPE cut to its first 32,000 tokens (merges whose
parts or result fall outside are dropped), so both this project and llama.cpp can encode prompts.

    /work/venv-ref/bin/python scripts/bench/make_synthetic_gguf.py --type Q4_0 --out /tmp/tinyllama-shape.Q4_0.gguf
    /work/venv-ref/bin/python scripts/bench/make_synthetic_gguf.py --type Q8_0 --out /tmp/tinyllama-shape.Q8_0.gguf

Needs numpy and gguf (the reference environment of scripts/reference/README.md). Nothing it
writes is committed.
"""
import argparse
import os

import numpy as np
import gguf

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

SHAPE = dict(blocks=22, hidden=2048, heads=32, kv_heads=4, ffn=5632, vocab=32000, context=2048)


def tokenizer_fields(path, vocab):
    """tokens, token types and merges of the SmolLM2 GGUF, cut to `vocab` tokens."""
    r = gguf.GGUFReader(path)
    def field(name):
        f = r.fields[name]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data] if f.types[-1] == gguf.GGUFValueType.STRING \
            else [int(f.parts[i][0]) for i in f.data]
    tokens = field("tokenizer.ggml.tokens")[:vocab]
    types = field("tokenizer.ggml.token_type")[:vocab]
    known = set(tokens)
    merges = []
    for m in field("tokenizer.ggml.merges"):
        a, _, b = m.partition(" ")
        if a in known and b in known and a + b in known:
            merges.append(m)
    return tokens, types, merges


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--type", choices=["Q4_0", "Q8_0"], default="Q4_0")
    p.add_argument("--out", required=True)
    p.add_argument("--tokenizer-from", default=os.path.join(ROOT, ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    s = SHAPE
    qtype = getattr(gguf.GGMLQuantizationType, a.type)
    rng = np.random.default_rng(a.seed)
    head_dim = s["hidden"] // s["heads"]

    w = gguf.GGUFWriter(a.out, "llama")
    w.add_name("TinyLlama-1.1B shape, random %s" % a.type)
    w.add_block_count(s["blocks"])
    w.add_context_length(s["context"])
    w.add_embedding_length(s["hidden"])
    w.add_feed_forward_length(s["ffn"])
    w.add_head_count(s["heads"])
    w.add_head_count_kv(s["kv_heads"])
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0 if a.type == "Q4_0" else gguf.LlamaFileType.MOSTLY_Q8_0)
    tokens, types, merges = tokenizer_fields(a.tokenizer_from, s["vocab"])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    def matrix(name, rows, cols):
        x = (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float32)
        q = gguf.quants.quantize(x, qtype)
        w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)

    def norm(name, n):
        w.add_tensor(name, np.ones(n, dtype=np.float32))

    matrix("token_embd.weight", s["vocab"], s["hidden"])
    for b in range(s["blocks"]):
        norm("blk.%d.attn_norm.weight" % b, s["hidden"])
        matrix("blk.%d.attn_q.weight" % b, s["hidden"], s["hidden"])
        matrix("blk.%d.attn_k.weight" % b, s["kv_heads"] * head_dim, s["hidden"])
        matrix("blk.%d.attn_v.weight" % b, s["kv_heads"] * head_dim, s["hidden"])
        matrix("blk.%d.attn_output.weight" % b, s["hidden"], s["hidden"])
        norm("blk.%d.ffn_norm.weight" % b, s["hidden"])
        matrix("blk.%d.ffn_gate.weight" % b, s["ffn"], s["hidden"])
        matrix("blk.%d.ffn_up.weight" % b, s["ffn"], s["hidden"])
        matrix("blk.%d.ffn_down.weight" % b, s["hidden"], s["ffn"])
    norm("output_norm.weight", s["hidden"])
    matrix("output.weight", s["vocab"], s["hidden"])

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    params = s["vocab"] * s["hidden"] * 2 + s["blocks"] * (2 * s["hidden"] ** 2 + 2 * s["kv_heads"] * head_dim * s["hidden"]
                                                          + 3 * s["ffn"] * s["hidden"])
    print("wrote %s: %.2f B parameters, %d bytes" % (a.out, params / 1e9, os.path.getsize(a.out)))


if __name__ == "__main__":
    main()
