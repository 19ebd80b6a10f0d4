#!/usr/bin/env python3
# Writes the tensor-decoding golden fixtures (Tests/RepengEngineTests/Fixtures/quant/*.json) with gguf-py.
#
# Run by hand, never by tests:
#   python3 -m venv /work/venv-quant && /work/venv-quant/bin/pip install gguf numpy
#   /work/venv-quant/bin/python scripts/reference/make_quant_fixtures.py
# (written against gguf 0.19.0 / numpy 2.4; models from scripts/bootstrap.sh in .cache/models,
# override with REPENG_MODELS).
#
# One JSON file per type: {"type": "Q4_1", "records": [...]}, each record
#   {type, model, tensor, block_offset, n_blocks, n_elements, origin, raw, expected}
# where raw is base64 of n_blocks consecutive encoded blocks and expected is
# gguf.quants.dequantize(raw) as f32 values (written as the exact decimal of each f32).
# block_offset counts blocks (= elements for F32/F16/BF16) from the start of the tensor.
#
# origin tells where the bytes come from:
#   "model"      bytes copied from a tensor of a real model file (F32, Q8_0, Q4_1, Q5_0, Q4_K, Q6_K);
#                the tests re-read these blocks from the model and compare.
#   "quantized"  real values (a dequantized model tensor slice) encoded here with
#                gguf.quants.quantize (F16, BF16, Q4_0, Q5_1: types neither model uses);
#                model/tensor name the source of the values, block_offset is the source position.
#   "synthetic"  bytes built from a seeded RNG (seed below), because gguf-py cannot encode the type:
#                Q5_K from real Q4_K blocks (d, dmin, scales, qs kept) plus random 5th bits, and
#                Q5_K with fully random scales/qs/qh and finite f16 d/dmin; and hand-picked F16/BF16
#                bit patterns covering zeros, subnormals and the largest finite values.
import base64
import json
import os
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

ROOT = Path(__file__).resolve().parents[2]
MODELS = Path(os.environ.get("REPENG_MODELS") or ROOT / ".cache" / "models")
OUT = ROOT / "Tests" / "RepengEngineTests" / "Fixtures" / "quant"
SMOL = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA = "gemma-3-270m-q4_k_m.gguf"
SEED = 20240611

# (model, tensor) pairs for the types the models store: two tensors per type, and for each
# two consecutive blocks at the start and two in the middle.
MODEL_SOURCES = {
    T.F32: [(SMOL, "blk.0.attn_norm.weight"), (GEMMA, "output_norm.weight")],
    T.Q8_0: [(SMOL, "token_embd.weight"), (GEMMA, "blk.0.attn_v.weight")],
    T.Q4_1: [(SMOL, "blk.0.ffn_down.weight"), (SMOL, "blk.10.attn_q.weight")],
    T.Q5_0: [(GEMMA, "blk.0.attn_k.weight"), (GEMMA, "blk.5.ffn_gate.weight")],
    T.Q4_K: [(GEMMA, "blk.0.attn_output.weight"), (GEMMA, "blk.3.attn_output.weight")],
    T.Q6_K: [(GEMMA, "blk.0.ffn_down.weight"), (GEMMA, "blk.4.ffn_down.weight")],
}
# Runs per record: F32 "blocks" are single elements, so take 32 of them per run.
RUN = {T.F32: 32, T.F16: 32, T.BF16: 32}

_readers: dict[str, gguf.GGUFReader] = {}


def tensor(model: str, name: str):
    if model not in _readers:
        _readers[model] = gguf.GGUFReader(MODELS / model)
    for t in _readers[model].tensors:
        if t.name == name:
            return t
    sys.exit(f"tensor {name} not in {model}")


def tensor_bytes(t) -> bytes:
    return np.ascontiguousarray(t.data).reshape(-1).view(np.uint8).tobytes()


def decode(raw: bytes, qtype: T) -> np.ndarray:
    return np.asarray(dequantize(np.frombuffer(raw, dtype=np.uint8).copy(), qtype), dtype=np.float32).reshape(-1)


def record(qtype: T, model: str, name: str, block_offset: int, n_blocks: int, raw: bytes, origin: str) -> dict:
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    assert len(raw) == n_blocks * type_size, (qtype, len(raw))
    expected = decode(raw, qtype)
    assert expected.size == n_blocks * block_size and np.all(np.isfinite(expected))
    return {
        "type": qtype.name, "model": model, "tensor": name, "block_offset": block_offset,
        "n_blocks": n_blocks, "n_elements": int(expected.size), "origin": origin,
        "raw": base64.b64encode(raw).decode("ascii"),
        # float(np.float32) is the exact value of the f32; json writes it as the shortest
        # decimal that round-trips the double, which identifies the f32 exactly.
        "expected": [float(x) for x in expected],
    }


def model_records(qtype: T) -> list[dict]:
    out = []
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    run = RUN.get(qtype, 2)
    for model, name in MODEL_SOURCES[qtype]:
        t = tensor(model, name)
        assert t.tensor_type == qtype, (name, t.tensor_type)
        data = tensor_bytes(t)
        n_blocks = len(data) // type_size
        for start in (0, (n_blocks // 2) // run * run + run // 2):
            raw = data[start * type_size:(start + run) * type_size]
            out.append(record(qtype, model, name, start, run, raw, "model"))
    return out


def real_values(model: str, name: str, start: int, count: int) -> np.ndarray:
    """`count` f32 values of a real tensor (dequantized with gguf-py) from element `start`."""
    t = tensor(model, name)
    values = decode(tensor_bytes(t), t.tensor_type)
    return values[start:start + count]


def quantized_records(qtype: T, sources: list[tuple[str, str, int]]) -> list[dict]:
    out = []
    block_size, _ = gguf.GGML_QUANT_SIZES[qtype]
    run = RUN.get(qtype, 4)
    for model, name, start in sources:
        values = real_values(model, name, start * block_size, run * block_size)
        raw = np.asarray(quantize(values, qtype)).view(np.uint8).tobytes()
        out.append(record(qtype, model, name, start, run, raw, "quantized"))
    return out


def half_bits(rng: np.random.Generator, lo: float, hi: float) -> bytes:
    return np.array([rng.uniform(lo, hi)], dtype=np.float16).tobytes()


def q5_k_records(rng: np.random.Generator) -> list[dict]:
    out = []
    # Real Q4_K super-blocks (d, dmin, scales, qs) with random 5th bits: Q5_K stores
    # d, dmin, scales[12], qh[32], qs[128], the same fields as Q4_K plus qh.
    name = "blk.6.attn_output.weight"
    data = tensor_bytes(tensor(GEMMA, name))
    for start in (0, 1200):
        raw = b""
        for b in range(start, start + 2):
            q4 = data[b * 144:(b + 1) * 144]
            raw += q4[:16] + rng.integers(0, 256, 32, dtype=np.uint8).tobytes() + q4[16:]
        out.append(record(T.Q5_K, GEMMA, name, start, 2, raw, "synthetic"))
    # Fully random blocks with finite, positive f16 d and dmin in the range real models use.
    for _ in range(2):
        raw = b""
        for _ in range(2):
            raw += half_bits(rng, 1e-4, 2e-2) + half_bits(rng, 1e-4, 2e-2)
            raw += rng.integers(0, 256, 12 + 32 + 128, dtype=np.uint8).tobytes()
        out.append(record(T.Q5_K, "", "random", 0, 2, raw, "synthetic"))
    return out


def special_half_records() -> list[dict]:
    # Finite F16 / BF16 edge cases: ±0, smallest and largest subnormals, smallest normal, 1,
    # largest finite, and a spread of ordinary values (JSON cannot carry inf/NaN; the Swift
    # tests check those against the IEEE definition for all 65536 patterns).
    f16 = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x83FF, 0x0400, 0x8400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF,
           0x3555, 0x0200, 0x0155, 0x3800, 0x4000, 0x5640, 0xC248, 0x1234, 0x2345, 0x0042, 0x8123, 0x7000,
           0x0010, 0x8010, 0x3BFF, 0x3C01, 0x07FF, 0x0401, 0x6000, 0xE000]
    bf16 = [0x0000, 0x8000, 0x0001, 0x8001, 0x007F, 0x807F, 0x0080, 0x8080, 0x3F80, 0xBF80, 0x7F7F, 0xFF7F,
            0x3EAB, 0x0040, 0x0015, 0x3F00, 0x4000, 0x42C8, 0xC049, 0x1234, 0x2345, 0x0042, 0x8123, 0x7000,
            0x0010, 0x8010, 0x3F7F, 0x3F81, 0x00FF, 0x0081, 0x6000, 0xE000]
    return [
        record(T.F16, "", "edge cases", 0, 32, np.array(f16, dtype="<u2").tobytes(), "synthetic"),
        record(T.BF16, "", "edge cases", 0, 32, np.array(bf16, dtype="<u2").tobytes(), "synthetic"),
    ]


def main() -> None:
    rng = np.random.default_rng(SEED)
    OUT.mkdir(parents=True, exist_ok=True)
    files: dict[T, list[dict]] = {q: model_records(q) for q in MODEL_SOURCES}
    files[T.F16] = quantized_records(T.F16, [(SMOL, "blk.3.attn_norm.weight", 0), (SMOL, "blk.0.ffn_up.weight", 4000)])
    files[T.BF16] = quantized_records(T.BF16, [(GEMMA, "blk.2.ffn_norm.weight", 0), (SMOL, "blk.1.attn_k.weight", 777)])
    files[T.F16] += special_half_records()[:1]
    files[T.BF16] += special_half_records()[1:]
    files[T.Q4_0] = quantized_records(T.Q4_0, [(SMOL, "blk.2.ffn_gate.weight", 0), (GEMMA, "blk.1.attn_q.weight", 5000)])
    files[T.Q5_1] = quantized_records(T.Q5_1, [(SMOL, "blk.4.attn_v.weight", 0), (GEMMA, "blk.7.ffn_up.weight", 9000)])
    files[T.Q5_K] = q5_k_records(rng)
    total = 0
    for qtype, records in files.items():
        path = OUT / f"{qtype.name}.json"
        text = json.dumps({"type": qtype.name, "records": records}, separators=(",", ":"))
        path.write_text(text + "\n")
        total += len(text)
        print(f"{path.relative_to(ROOT)}: {len(records)} records, {len(text)} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
