#!/usr/bin/env python3
"""Writes the generated seed inputs of Fuzz/Corpus (files named gen-*).

    python3 Fuzz/make_seeds.py            # GGUF models, GGUF/JSON vectors, protobuf requests
    python3 Fuzz/make_seeds.py --no-proto # skip the protobuf seeds (no protoc / python3-protobuf)

GGUF files (v2/v3, little-endian, ggml docs/gguf.md) are written by hand here, small enough
(a few KB) to commit. Request seeds are serialized with the Python protobuf runtime from
proto/repeng/v1/repeng.proto (needs protoc and python3-protobuf; Debian: protobuf-compiler,
python3-protobuf, which scripts/bootstrap.sh installs). Output is deterministic: running the
script again rewrites the same bytes. Hand-written seeds (the other files) are left alone.
"""
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "Corpus")

# --- GGUF writer ---------------------------------------------------------------------------

# Metadata value types.
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
          BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}

# ggml tensor types: number, elements per block, bytes per block.
GGML = {
    "F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20),
    "Q5_0": (6, 32, 22), "Q5_1": (7, 32, 24), "Q8_0": (8, 32, 34), "Q2_K": (10, 256, 84),
    "Q4_K": (12, 256, 144), "Q5_K": (13, 256, 176), "Q6_K": (14, 256, 210),
    "IQ4_NL": (20, 32, 18), "I8": (24, 1, 1), "I16": (25, 1, 2), "I32": (26, 1, 4),
    "I64": (27, 1, 8), "F64": (28, 1, 8), "BF16": (30, 1, 2),
}


def gstr(s):
    b = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gvalue(t, v):
    if t == STR:
        return gstr(v)
    if t == ARR:
        et, items = v
        out = struct.pack("<IQ", et, len(items))
        for item in items:
            out += gvalue(et, item)
        return out
    return struct.pack(SCALAR[t], v)


class GGUF:
    def __init__(self, version=3, alignment=32):
        self.version = version
        self.alignment = alignment
        self.kv = []
        self.tensors = []
        if alignment != 32:
            self.add("general.alignment", U32, alignment)

    def add(self, key, t, v):
        self.kv.append((key, t, v))
        return self

    def tensor(self, name, dims, type_name, data):
        self.tensors.append((name, dims, type_name, data))
        return self

    def bytes(self):
        out = b"GGUF" + struct.pack("<IQQ", self.version, len(self.tensors), len(self.kv))
        for key, t, v in self.kv:
            out += gstr(key) + struct.pack("<I", t) + gvalue(t, v)
        offset = 0
        blobs = []
        for name, dims, type_name, data in self.tensors:
            out += gstr(name) + struct.pack("<I", len(dims))
            out += b"".join(struct.pack("<Q", d) for d in dims)
            out += struct.pack("<IQ", GGML[type_name][0], offset)
            pad = (-len(data)) % self.alignment
            blobs.append(data + b"\0" * pad)
            offset += len(data) + pad
        out += b"\0" * ((-len(out)) % self.alignment)
        return out + b"".join(blobs)


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def f16(values):
    return struct.pack("<%de" % len(values), *values)


def quant(type_name, elements, rng):
    """Plausible blocks: random quants, small positive f16 scales where the format has them."""
    _, block, size = GGML[type_name]
    assert elements % block == 0
    out = bytearray()
    for _ in range(elements // block):
        b = bytearray(rng.getrandbits(8) for _ in range(size))
        if type_name in ("Q4_0", "Q5_0", "Q8_0", "IQ4_NL"):
            b[0:2] = struct.pack("<e", 0.01)
        elif type_name in ("Q4_1", "Q5_1"):
            b[0:4] = struct.pack("<ee", 0.01, -0.1)
        elif type_name in ("Q4_K", "Q5_K"):
            b[0:4] = struct.pack("<ee", 0.01, 0.001)
        elif type_name == "Q6_K":
            b[208:210] = struct.pack("<e", 0.01)
        elif type_name == "Q2_K":
            b[80:84] = struct.pack("<ee", 0.01, 0.001)
        out += b
    return bytes(out)


def dense(type_name, n, rng, scale=0.1):
    values = [rng.uniform(-scale, scale) for _ in range(n)]
    if type_name == "F32":
        return f32(values)
    if type_name == "F16":
        return f16(values)
    if type_name == "BF16":
        return b"".join(struct.pack("<f", v)[2:4] for v in values)
    return quant(type_name, n, rng)


# --- tokenizers ----------------------------------------------------------------------------

def gpt2_bytes_to_unicode():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def bpe_vocab():
    """A tiny byte-level BPE vocabulary: some single-byte tokens, merges, special tokens."""
    m = gpt2_bytes_to_unicode()
    singles = [m[b] for b in b" \n!,.?'abcdehilmnorstuwyIT0123"]
    merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "Ġ s", "Ċ Ċ"]
    merged = [a + b for a, b in (r.split(" ") for r in merges)]
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens = special + singles + [t for t in merged if t not in singles]
    types = [3] * len(special) + [1] * (len(tokens) - len(special))
    return tokens, types, merges


def add_bpe_tokenizer(g, pre="smollm"):
    tokens, types, merges = bpe_vocab()
    g.add("tokenizer.ggml.model", STR, "gpt2")
    g.add("tokenizer.ggml.pre", STR, pre)
    g.add("tokenizer.ggml.tokens", ARR, (STR, tokens))
    g.add("tokenizer.ggml.token_type", ARR, (I32, types))
    g.add("tokenizer.ggml.merges", ARR, (STR, merges))
    g.add("tokenizer.ggml.bos_token_id", U32, 1)
    g.add("tokenizer.ggml.eos_token_id", U32, 2)
    g.add("tokenizer.ggml.unknown_token_id", U32, 0)
    g.add("tokenizer.ggml.padding_token_id", U32, 2)
    g.add("tokenizer.ggml.add_bos_token", BOOL, False)
    g.add("tokenizer.chat_template", STR,
          "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}")
    return len(tokens)


def spm_vocab(gemma):
    special = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"] if gemma else ["<unk>", "<s>", "</s>"]
    byte_tokens = ["<0x%02X>" % b for b in (0x0A, 0x20, 0x21, 0xC3, 0xA9, 0xE2, 0x96, 0x81)]
    pieces = ["▁", "▁the", "▁a", "the", "th", "he", "e", "t", "h", "a", "s", "▁s", "in", "i", "n",
              "▁▁", "  ", "\n", "é", "<start_of_turn>", "<end_of_turn>", "[INST]"]
    tokens = special + byte_tokens + pieces
    types = [3] * len(special) + [6] * len(byte_tokens) + [1] * len(pieces)
    for i, t in enumerate(tokens):
        if t in ("<start_of_turn>", "<end_of_turn>"):
            types[i] = 3
        if t == "[INST]":
            types[i] = 4
    scores = [0.0] * len(special) + [0.0] * len(byte_tokens) + [-float(i) for i in range(len(pieces))]
    return tokens, types, scores


def add_spm_tokenizer(g, gemma=False):
    tokens, types, scores = spm_vocab(gemma)
    g.add("tokenizer.ggml.model", STR, "llama")
    g.add("tokenizer.ggml.tokens", ARR, (STR, tokens))
    g.add("tokenizer.ggml.scores", ARR, (F32, scores))
    g.add("tokenizer.ggml.token_type", ARR, (I32, types))
    bos, eos, unk = (tokens.index("<bos>"), tokens.index("<eos>"), tokens.index("<unk>")) if gemma else (1, 2, 0)
    g.add("tokenizer.ggml.bos_token_id", U32, bos)
    g.add("tokenizer.ggml.eos_token_id", U32, eos)
    g.add("tokenizer.ggml.unknown_token_id", U32, unk)
    g.add("tokenizer.ggml.add_bos_token", BOOL, True)
    g.add("tokenizer.ggml.add_eos_token", BOOL, False)
    return len(tokens)


# --- models --------------------------------------------------------------------------------

def tiny_model(arch, hidden, ffn, heads, kv_heads, blocks, tokenizer, weight_type, embd_type, rng,
               bias=False, tied=True, extra=None):
    g = GGUF()
    g.add("general.architecture", STR, arch)
    g.add("general.name", STR, "fuzz-seed-" + arch)
    vocab = tokenizer(g)
    g.add(arch + ".block_count", U32, blocks)
    g.add(arch + ".context_length", U32, 64)
    g.add(arch + ".embedding_length", U32, hidden)
    g.add(arch + ".feed_forward_length", U32, ffn)
    g.add(arch + ".attention.head_count", U32, heads)
    g.add(arch + ".attention.head_count_kv", U32, kv_heads)
    g.add(arch + ".attention.layer_norm_rms_epsilon", F32, 1e-5)
    g.add(arch + ".rope.freq_base", F32, 10000.0)
    for key, t, v in extra or []:
        g.add(key, t, v)
    head_dim = hidden // heads
    q, kv = heads * head_dim, kv_heads * head_dim
    ones = f32([1.0] * hidden)
    g.tensor("token_embd.weight", [hidden, vocab], embd_type, dense(embd_type, hidden * vocab, rng))
    g.tensor("output_norm.weight", [hidden], "F32", ones)
    if not tied:
        g.tensor("output.weight", [hidden, vocab], embd_type, dense(embd_type, hidden * vocab, rng))
    for i in range(blocks):
        p = "blk.%d." % i
        g.tensor(p + "attn_norm.weight", [hidden], "F32", ones)
        g.tensor(p + "attn_q.weight", [hidden, q], weight_type, dense(weight_type, hidden * q, rng))
        g.tensor(p + "attn_k.weight", [hidden, kv], weight_type, dense(weight_type, hidden * kv, rng))
        g.tensor(p + "attn_v.weight", [hidden, kv], weight_type, dense(weight_type, hidden * kv, rng))
        if bias:
            g.tensor(p + "attn_q.bias", [q], "F32", dense("F32", q, rng))
            g.tensor(p + "attn_k.bias", [kv], "F32", dense("F32", kv, rng))
            g.tensor(p + "attn_v.bias", [kv], "F32", dense("F32", kv, rng))
        g.tensor(p + "attn_output.weight", [q, hidden], weight_type, dense(weight_type, q * hidden, rng))
        g.tensor(p + "ffn_norm.weight", [hidden], "F32", ones)
        g.tensor(p + "ffn_gate.weight", [hidden, ffn], weight_type, dense(weight_type, hidden * ffn, rng))
        g.tensor(p + "ffn_up.weight", [hidden, ffn], weight_type, dense(weight_type, hidden * ffn, rng))
        g.tensor(p + "ffn_down.weight", [ffn, hidden], weight_type, dense(weight_type, ffn * hidden, rng))
    return g


def gguf_seeds(rng):
    out = {}
    out["gen-empty-v3.gguf"] = GGUF().bytes()
    out["gen-empty-v2.gguf"] = GGUF(version=2).bytes()

    g = GGUF(alignment=64)
    g.add("general.architecture", STR, "llama")
    g.add("general.name", STR, "all value types – ünïcödé ✓")
    g.add("test.u8", U8, 200).add("test.i8", I8, -100).add("test.u16", U16, 60000).add("test.i16", I16, -30000)
    g.add("test.u32", U32, 4000000000).add("test.i32", I32, -2000000000).add("test.f32", F32, 1.5)
    g.add("test.bool", BOOL, True).add("test.u64", U64, 2 ** 64 - 1).add("test.i64", I64, -(2 ** 63))
    g.add("test.f64", F64, -2.25).add("test.empty_string", STR, "")
    g.add("test.arr.u8", ARR, (U8, [0, 1, 255])).add("test.arr.i16", ARR, (I16, [-1, 2]))
    g.add("test.arr.u64", ARR, (U64, [2 ** 63, 1])).add("test.arr.f32", ARR, (F32, [0.5, -0.0]))
    g.add("test.arr.f64", ARR, (F64, [1e300])).add("test.arr.bool", ARR, (BOOL, [True, False]))
    g.add("test.arr.str", ARR, (STR, ["a", "", "βγ"])).add("test.arr.empty", ARR, (I32, []))
    g.add("test.arr.nested", ARR, (ARR, [(I32, [1, 2]), (ARR, [(STR, ["deep"])]), (F32, [])]))
    g.tensor("a", [4], "F32", f32([1, 2, 3, 4]))
    g.tensor("b", [2, 3], "F16", f16([0.5] * 6))
    out["gen-metadata-all-types.gguf"] = g.bytes()

    g = GGUF()
    for name in ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"):
        _, block, _ = GGML[name]
        n = block if block > 1 else 8
        dims = [n] if name not in ("F16", "Q8_0") else [n, 2]
        g.tensor("t." + name.lower(), dims, name, dense(name, n * (2 if len(dims) == 2 else 1), rng))
    out["gen-tensors-decodable.gguf"] = g.bytes()

    g = GGUF(alignment=8)
    for name in ("Q2_K", "IQ4_NL", "I8", "I16", "I32", "I64", "F64"):
        _, block, size = GGML[name]
        n = block if block > 1 else 4
        g.tensor("t." + name.lower(), [n], name, bytes(rng.getrandbits(8) for _ in range(size * (n // block))))
    g.tensor("empty", [0, 7], "F32", b"")
    g.tensor("four.dims", [2, 1, 1, 2], "F32", f32([1, 2, 3, 4]))
    out["gen-tensors-other-types.gguf"] = g.bytes()

    out["gen-model-llama-bpe.gguf"] = tiny_model(
        "llama", 8, 16, 2, 1, 1, add_bpe_tokenizer, "F32", "F32", rng).bytes()
    out["gen-model-qwen2-spm.gguf"] = tiny_model(
        "qwen2", 8, 16, 2, 2, 2, lambda g: add_spm_tokenizer(g), "F16", "BF16", rng, bias=True, tied=False,
        extra=[("qwen2.rope.scaling.type", STR, "linear"), ("qwen2.rope.scaling.factor", F32, 2.0),
               ("qwen2.attention.key_length", U32, 4), ("qwen2.rope.dimension_count", U32, 4)]).bytes()
    out["gen-model-llama-quant.gguf"] = tiny_model(
        "llama", 32, 32, 4, 2, 1, lambda g: add_spm_tokenizer(g), "Q8_0", "Q4_0", rng).bytes()

    g = GGUF()
    g.add("general.architecture", STR, "gemma3")
    add_spm_tokenizer(g, gemma=True)
    g.add("tokenizer.chat_template", STR, "{{ bos_token }}<start_of_turn>user\n{{ content }}<end_of_turn>\n")
    out["gen-tokenizer-gemma-spm.gguf"] = g.bytes()

    g = GGUF()
    g.add("general.architecture", STR, "phi3")
    add_spm_tokenizer(g)
    out["gen-tokenizer-phi3-spm.gguf"] = g.bytes()

    g = GGUF()
    add_bpe_tokenizer(g, pre="qwen2")
    out["gen-tokenizer-bpe-qwen2.gguf"] = g.bytes()
    return out


# --- control vectors -----------------------------------------------------------------------

def read_fixture_vector(path, keep):
    """(metadata, {layer: floats}) of a vector GGUF with F32 1-D tensors, first `keep` tensors."""
    b = open(path, "rb").read()
    o = 4
    _, nt, nkv = struct.unpack_from("<IQQ", b, o)
    o += 20

    def rs():
        nonlocal o
        n, = struct.unpack_from("<Q", b, o)
        o += 8
        s = b[o:o + n].decode()
        o += n
        return s

    meta = []
    for _ in range(nkv):
        k = rs()
        t, = struct.unpack_from("<I", b, o)
        o += 4
        if t == STR:
            v = rs()
        else:
            v, = struct.unpack_from(SCALAR[t], b, o)
            o += struct.calcsize(SCALAR[t])
        meta.append((k, t, v))
    infos = []
    for _ in range(nt):
        name = rs()
        nd, = struct.unpack_from("<I", b, o)
        o += 4
        dims = struct.unpack_from("<%dQ" % nd, b, o)
        o += 8 * nd
        _, off = struct.unpack_from("<IQ", b, o)
        o += 12
        infos.append((name, dims, off))
    data = o + (-o) % 32
    dirs = {}
    for name, dims, off in infos[:keep]:
        dirs[int(name.split(".")[1])] = list(struct.unpack_from("<%df" % dims[0], b, data + off))
    return meta, dirs


def vector_gguf(meta, dirs, shape=None, type_name="F32", extra_tensors=()):
    g = GGUF()
    for k, t, v in meta:
        g.add(k, t, v)
    for layer in sorted(dirs):
        v = dirs[layer]
        data = f32(v) if type_name == "F32" else f16(v)
        g.tensor("direction.%d" % layer, shape or [len(v)], type_name, data)
    for name, dims, data in extra_tensors:
        g.tensor(name, dims, "F32", data)
    return g.bytes()


def vector_json(model_type, dirs, n_embd=None, **extra):
    doc = {"format": "repeng-control-vector", "version": 1, "model_type": model_type,
           "n_embd": n_embd if n_embd is not None else len(next(iter(dirs.values())))}
    for key in ("block_count", "method", "model_name", "training"):
        if key in extra:
            doc[key] = extra[key]
    doc["directions"] = {str(k): v for k, v in sorted(dirs.items())}
    return (json.dumps(doc, indent=2, ensure_ascii=extra.get("ascii", False)) + "\n").encode()


def vector_seeds(rng):
    def rnd(n):
        return [struct.unpack("<f", struct.pack("<f", rng.uniform(-0.1, 0.1)))[0] for _ in range(n)]

    cv = [("general.architecture", STR, "controlvector"), ("controlvector.model_hint", STR, "llama")]
    dirs3 = {1: rnd(16), 2: rnd(16), 3: rnd(16)}
    fixture = os.path.join(ROOT, "Tests/RepengSteeringTests/Fixtures/repeng/happy_pca_diff.gguf")
    fmeta, fdirs = read_fixture_vector(fixture, 1)

    g = {}
    g["gen-basic.gguf"] = vector_gguf(cv + [("controlvector.layer_count", U32, 3)], dirs3)
    g["gen-full-metadata.gguf"] = vector_gguf(
        cv + [("controlvector.layer_count", U32, 3), ("controlvector.n_embd", U32, 16),
              ("controlvector.block_count", U32, 30), ("controlvector.method", STR, "pca_diff"),
              ("controlvector.model_name", STR, "SmolLM2 135M Instruct"),
              ("controlvector.training", STR, "pca_diff, 200 pairs, layers 1-3")], dirs3)
    g["gen-llamacpp-style.gguf"] = vector_gguf(
        cv + [("controlvector.layer_count", I32, 4)], {1: rnd(8), 2: rnd(8), 3: rnd(8), 4: rnd(8)})
    g["gen-warnings.gguf"] = vector_gguf(
        [("general.architecture", STR, "llama"), ("controlvector.model_hint", STR, "qwen2"),
         ("controlvector.layer_count", U64, 7)],
        {0: rnd(8), 5: rnd(8)}, shape=[8, 1], extra_tensors=[("stray.weight", [2], f32([1, 2]))])
    g["gen-f16-direction.gguf"] = vector_gguf(cv, {1: rnd(8)}, type_name="F16")
    g["gen-special-floats.gguf"] = vector_gguf(
        cv, {1: [0.0, -0.0, 1e-45, -1.1754942e-38, 3.4028235e38, -3.4028235e38, 1.0, -1.0]})
    g["gen-happy-one-layer.gguf"] = vector_gguf(fmeta[:2] + [("controlvector.layer_count", U32, 1)], fdirs)

    j = {}
    j["gen-basic.json"] = vector_json("llama", dirs3)
    j["gen-full-metadata.json"] = vector_json(
        "llama", {k: v[:8] for k, v in fdirs.items()}, block_count=30, method="pca_diff",
        model_name="SmolLM2 135M Instruct", training="pca_diff, 200 pairs, layers 1-29")
    j["gen-block-zero.json"] = vector_json("qwen2", {0: rnd(4), 7: rnd(4)}, block_count=8)
    j["gen-escapes.json"] = vector_json("llama \"quoted\" \\ \t tab – ✓", {2: rnd(2)}, method="mean_diff", ascii=True)
    j["gen-special-floats.json"] = (
        '{"format":"repeng-control-vector","version":1,"model_type":"llama","n_embd":8,'
        '"directions":{"1":[0,-0.0,1e-45,1.401298464324817e-45,3.4028234663852886e38,-1E-7,5e-324,12345678901234567890]}}\n'
    ).encode()
    return g, j


# --- protobuf requests ---------------------------------------------------------------------

def request_seeds():
    protoc = shutil.which("protoc")
    if not protoc:
        raise SystemExit("make_seeds: protoc not found (apt-get install protobuf-compiler) or use --no-proto")
    tmp = tempfile.mkdtemp(prefix="repeng-fuzz-proto-")
    try:
        subprocess.run([protoc, "-I", os.path.join(ROOT, "proto"), "--python_out", tmp,
                        "repeng/v1/repeng.proto", "grpc/health/v1/health.proto"], check=True)
        for d in ("repeng", "repeng/v1", "grpc", "grpc/health", "grpc/health/v1"):
            open(os.path.join(tmp, d, "__init__.py"), "a").close()
        sys.path.insert(0, tmp)
        try:
            from repeng.v1 import repeng_pb2 as pb
            from grpc.health.v1 import health_pb2 as health
        except ImportError as e:
            raise SystemExit("make_seeds: %s (apt-get install python3-protobuf, run with /usr/bin/python3) or use --no-proto" % e)
    except BaseException:
        shutil.rmtree(tmp)
        raise

    def control(terms, layers=(), normalize=False):
        c = pb.Control(layers=list(layers), normalize=normalize)
        for name, coeff in terms:
            c.terms.add(vector=name, coefficient=coeff)
        return c

    seeds = {}
    seeds["gen-generate-prompt.bin"] = pb.GenerateRequest(prompt="Once upon a time", max_tokens=16)
    seeds["gen-generate-chat.bin"] = pb.GenerateRequest(
        model="smollm2", chat=pb.ChatMessages(messages=[
            pb.ChatMessage(role="system", content="You are terse."),
            pb.ChatMessage(role="user", content="Say hi <|im_end|> <start_of_turn>"),
            pb.ChatMessage(role="assistant", content="Hi."),
            pb.ChatMessage(role="user", content="Again, in Français ✓")]),
        max_tokens=64, stop=["\n\n", "User:"], return_token_ids=True)
    seeds["gen-generate-sampling.bin"] = pb.GenerateRequest(
        prompt="The weather today", max_tokens=8,
        sampling=pb.SamplingOptions(temperature=0.7, top_k=40, top_p=0.9, min_p=0.05, repetition_penalty=1.3, seed=42),
        control=control([("happy", 4.0), ("calm", -1.5)], layers=[-1, -2, 3], normalize=True))
    seeds["gen-generate-edge.bin"] = pb.GenerateRequest(
        prompt="\u0000\uffff\U0001F600 " * 4, max_tokens=4294967295,
        sampling=pb.SamplingOptions(temperature=float("nan"), top_k=4294967295, top_p=0.0, min_p=1.0,
                                    repetition_penalty=float("inf"), seed=2 ** 64 - 1),
        stop=[""], control=control([("../etc/passwd", 1e30)], layers=[-2147483648, 2147483647]))
    seeds["gen-setcontrol.bin"] = pb.SetControlRequest(
        model="smollm2", control=control([("happy", 2.0), ("sad", -2.0), ("wide", 1.0)], layers=[1, 2, 3]))
    seeds["gen-setcontrol-empty.bin"] = pb.SetControlRequest(model="gemma3")
    seeds["gen-getcontrol.bin"] = pb.GetControlRequest(model="smollm2")
    seeds["gen-reset.bin"] = pb.ResetRequest(model="gemma3")
    seeds["gen-tokenize.bin"] = pb.TokenizeRequest(model="smollm2", text="<|im_start|>user\nHello, world!<|im_end|>")
    seeds["gen-tokenize-nospecial.bin"] = pb.TokenizeRequest(text="  Ünïcödé  tabs\tand\nnewlines 1234567", no_special=True)
    train = pb.TrainRequest(model="smollm2", name="happy.v2", method=pb.TRAINING_METHOD_PCA_CENTER,
                            layers=[-1, -5, 10, 0], overwrite=True, batch_size=8)
    train.dataset.add(positive="[INST] Act as if you're extremely happy. [/INST] I think",
                      negative="[INST] Act as if you're extremely sad. [/INST] I think")
    train.dataset.add(positive="Positive", negative="")
    seeds["gen-train.bin"] = train
    seeds["gen-train-minimal.bin"] = pb.TrainRequest(name="x", method=pb.TRAINING_METHOD_MEAN_DIFF)
    seeds["gen-health.bin"] = health.HealthCheckRequest(service="repeng.v1.Repeng")
    out = {name: m.SerializeToString() for name, m in seeds.items()}
    # Layer specs as repengctl's --layers takes them (the target also reads its input as text).
    out["gen-layers-ranges.txt"] = b"13..25,27"
    out["gen-layers-negative.txt"] = b"-1..-29"
    out["gen-layers-list.txt"] = b"3, 5,7..8,5"
    shutil.rmtree(tmp)
    return out


def safetensors(tensors, dtype="F32"):
    """A safetensors file of (name, shape, values) in one dtype (F32 or F16)."""
    header, data = {}, b""
    for name, shape, values in tensors:
        begin = len(data)
        data += struct.pack("<%d%s" % (len(values), "f" if dtype == "F32" else "e"), *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [begin, len(data)]}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-(8 + len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + data


def sae_seeds(rng):
    """SAE folder inputs of fuzz-sae: byte 0 = layout/name/pairing bits, u16 cfg.json length,
    cfg.json, weights (see Fuzz/Sources/fuzz-sae/main.swift)."""
    d, f = 8, 16
    def vals(n):
        return [round(rng.uniform(-1, 1), 3) for _ in range(n)]
    def pack(pick, cfg, weights):
        c = json.dumps(cfg).encode()
        return bytes([pick]) + struct.pack("<H", len(c)) + c + weights
    eleuther = safetensors([("encoder.weight", [f, d], vals(f * d)), ("encoder.bias", [f], vals(f)),
                            ("W_dec", [f, d], vals(f * d)), ("b_dec", [d], vals(d))])
    out = {
        "gen-eleuther.bin": pack(0, {"d_in": d, "num_latents": f, "k": 4, "activation": "topk",
                                     "transcode": False, "skip_connection": False}, eleuther),
        "gen-eleuther-parent-repeng.bin": pack(0x60, {"d_in": d, "num_latents": 0, "k": 4}, eleuther),
    }
    for arch, extra, pick in [("standard", [("b_enc", [f], vals(f))], 0x82), ("topk", [("b_enc", [f], vals(f))], 0xC2),
                              ("jumprelu", [("b_enc", [f], vals(f)), ("threshold", [f], [abs(v) for v in vals(f)])], 0x82),
                              ("gated", [("b_gate", [f], vals(f)), ("r_mag", [f], vals(f)), ("b_mag", [f], vals(f))], 0x82)]:
        weights = safetensors([("W_enc", [d, f], vals(f * d)), ("W_dec", [f, d], vals(f * d)), ("b_dec", [d], vals(d))] + extra,
                              dtype="F16" if arch == "topk" else "F32")
        cfg = {"architecture": arch, "d_in": d, "d_sae": f, "apply_b_dec_to_input": arch != "jumprelu", "k": 3,
               "normalize_activations": "constant_norm_rescale" if arch == "gated" else "none",
               "metadata": {"hook_name": "blocks.2.hook_resid_post", "hook_head_index": None}}
        out["gen-saelens-%s.bin" % arch] = pack(pick, cfg, weights)
    return out


def write(target, files):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    for name, data in sorted(files.items()):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        print("%-60s %6d bytes" % (os.path.join("Fuzz/Corpus", target, name), len(data)))


def main():
    rng = random.Random(20240601)
    models = gguf_seeds(rng)
    vec_gguf, vec_json = vector_seeds(rng)
    write("fuzz-gguf", models)
    # The GGUF reader also sees the vector layout.
    write("fuzz-gguf", {k.replace("gen-", "gen-vector-"): v for k, v in vec_gguf.items() if k in ("gen-full-metadata.gguf", "gen-warnings.gguf")})
    write("fuzz-vector-gguf", vec_gguf)
    write("fuzz-vector-json", vec_json)
    write("fuzz-sae", sae_seeds(random.Random(20261201)))
    if "--no-proto" not in sys.argv[1:]:
        write("fuzz-request", request_seeds())


if __name__ == "__main__":
    main()
