# Golden Gemma-3-270M fixtures (config and weight conventions, hidden states, logits, greedy generations, a long prompt past the sliding window) from Hugging Face transformers loading the bundled GGUF.
"""Writes the Gemma-3-270M golden fixtures used by the engine tests.

Run by hand with the reference environment described in scripts/reference/README.md:

    /work/venv-ref/bin/python scripts/reference/make_gemma3_fixtures.py \
        --models .cache/models --out Tests/RepengEngineTests/Fixtures/model

transformers reads the GGUF with its legacy GGUF loader (gemma3 is not on the newer
packed-weight path), dequantizes every tensor to float32 with gguf-py and builds an ordinary
``Gemma3ForCausalLM`` (config ``gemma3_text``); all computation below is float32 on the CPU
with two threads.

Hidden-state indexing (``output_hidden_states=True``): 19 tensors for the 18 blocks. Index 0
is the token embedding output (already multiplied by sqrt(hidden_size)), index k
(1 <= k < 18) is the output of block k-1, and the last index (18) is the output of the last
block AFTER the final RMSNorm. The raw output of the last block (before the final norm) is not
in that tuple; it is captured with a forward hook and stored separately. The script checks
these relations with hooks on every block.

Outputs (Tests/RepengEngineTests/Fixtures/model/):
  gemma3_config.json    GGUF metadata, the config transformers builds, tensor names/types/shapes,
                        how the loader transforms weights (checked numerically), tokenizer checks
  gemma3_hidden.json    token ids and hidden states of a few prompts
  gemma3_logits.json    top-50 last-position logits and summary statistics of the same prompts
  gemma3_greedy.json    greedy continuations
  gemma3_long.json      a prompt longer than the 512-token sliding window
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import struct
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

# Shared JSON helpers of the SmolLM2 script (same float encoding and layout).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_model_fixtures import f32_list, sha256, to_json, write_json  # noqa: E402

MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
HIDDEN_INDICES = [0, 1, 6, 12, 17, 18]
ALL_POSITION_INDICES = [1, 17]
TOP_K_LOGITS = 50
LONG_TOP_K = 20
LONG_INDICES = [17, 18]
SAMPLED_LOGIT_STRIDE = 4096  # logits of ids 0, 4096, 8192, ... are stored too (64 values)
GREEDY_NEW_TOKENS = 24
THREADS = 2

# Prompts for the hidden-state / logit fixture: (name, text). Tokenized with the tokenizer's
# defaults (add_special_tokens=True), which PREPENDS <bos> (id 2) for this model: the GGUF sets
# tokenizer.ggml.add_bos_token = true.
HIDDEN_PROMPTS = [
    ("short_plain", "The capital of France is"),
    ("story", "Once upon a time, in a small village nestled between two mountains, there lived an old clockmaker "
              "who spent his days repairing the watches of farmers and merchants. One winter morning, a young girl "
              "knocked on his door carrying a broken music box that had belonged to her grandmother, and"),
    ("code", "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n"),
    ("numbers", "Invoice #4471: 3 items at $19.99, total $59.97 (incl. 8.25% tax) due 2024-03-15."),
    ("non_english", "Le renard brun rapide saute par-dessus le chien paresseux. Größe, Straße, naïve café — "
                    "東京は日本の首都です。"),
    ("emoji", "I love pizza 🍕 and sushi 🍣!!! 😀"),
]
# Prompts whose every position is stored for ALL_POSITION_INDICES.
ALL_POSITION_PROMPTS = ["short_plain", "emoji"]

# Greedy generation cases: (name, text). Gemma-3-270M here is the base model and the GGUF
# carries no chat template, so all prompts are plain text.
GREEDY_CASES = [
    ("plain_capital", "The capital of France is"),
    ("plain_story", "Once upon a time"),
    ("plain_code", "def square(x):\n    return"),
    ("plain_water", "Water boils at"),
]

# The long prompt: a fact stated once at the start (beyond the sliding window of the last
# position), ~640 tokens of varied filler, then a question about the fact. Sliding-window
# layers cannot see the fact from the last position; the global layers (5, 11, 17) can.
LONG_HEAD = "Note for the reader: the secret password of the lighthouse keeper is \"marmalade\". Remember it.\n\n"
LONG_TAIL = "\n\nQuestion: What is the secret password of the lighthouse keeper?\nAnswer: The secret password is \""
LONG_SUBJECTS = ["The baker", "A fisherman", "The schoolteacher", "An old sailor", "The mayor", "A young painter",
                 "The blacksmith", "A travelling musician", "The librarian", "A shepherd", "The doctor",
                 "A carpenter", "The postman", "A gardener", "The innkeeper", "A weaver"]
LONG_VERBS = ["walked along the harbour", "counted the boats in the bay", "repaired a wooden fence",
              "wrote a long letter to a cousin", "watched the gulls over the cliffs", "sold bread at the market",
              "climbed the hill behind the church", "told a story about the winter storm", "planted rows of beans",
              "mended a torn sail", "read the weather report aloud", "lit a fire in the kitchen"]
LONG_ENDINGS = ["before the sun went down.", "while the rain kept falling.", "and then went home for supper.",
                "as the tide came in.", "without saying a word to anyone.", "and felt quite content."]
LONG_TARGET_TOKENS = (600, 700)


# ---------------------------------------------------------------------------
# Set-up


def versions() -> dict:
    v = {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__}
    for pkg in ("gguf", "numpy", "tokenizers", "sentencepiece"):
        v[pkg] = importlib.metadata.version(pkg)
    return v


def load(models: Path):
    torch.set_num_threads(THREADS)
    tok = AutoTokenizer.from_pretrained(models, gguf_file=MODEL_FILE)
    model = AutoModelForCausalLM.from_pretrained(models, gguf_file=MODEL_FILE, dtype=torch.float32)
    model.eval()
    return tok, model


def common_meta(models: Path, model) -> dict:
    return {
        "model_file": MODEL_FILE,
        "model_sha256": sha256(models / MODEL_FILE),
        "versions": versions(),
        "dtype": "float32",
        "device": "cpu",
        "torch_threads": THREADS,
        "attn_implementation": model.config._attn_implementation,
        "generator": "scripts/reference/make_gemma3_fixtures.py",
    }


@torch.no_grad()
def forward_single(model, ids: list[int], check_indexing: bool = True, attention_mask=None):
    """One unpadded sequence; returns (hidden_states tuple of [T, H], last-block pre-norm [T, H], last logits [V]).

    With check_indexing, hooks on every block verify index k = output of block k-1 and the last
    index = final norm of the last block's output.
    """
    layers = model.model.layers
    captured: dict[int, torch.Tensor] = {}

    def make_hook(i):
        def hook(_module, _inputs, output):
            captured[i] = (output[0] if isinstance(output, tuple) else output).detach().clone()
        return hook

    handles = [layers[i].register_forward_hook(make_hook(i))
               for i in (range(len(layers)) if check_indexing else [len(layers) - 1])]
    try:
        x = torch.tensor([ids], dtype=torch.long)
        mask = torch.ones_like(x) if attention_mask is None else attention_mask
        out = model(input_ids=x, attention_mask=mask, output_hidden_states=True, use_cache=False, logits_to_keep=1)
    finally:
        for h in handles:
            h.remove()
    hs = tuple(h[0].float().numpy() for h in out.hidden_states)
    n = len(layers)
    pre_norm = captured[n - 1][0].float().numpy()
    assert len(hs) == n + 1
    if check_indexing:
        emb = (model.model.embed_tokens.weight[x[0]] * model.model.embed_tokens.embed_scale).numpy()
        assert np.array_equal(hs[0], emb), "index 0 is not embed * sqrt(hidden)"
        for k in range(1, n):
            assert np.array_equal(hs[k], captured[k - 1][0].numpy()), f"index {k} is not block {k - 1}"
        normed = model.model.norm(torch.from_numpy(pre_norm)).numpy()
        assert np.array_equal(normed, hs[n]), f"index {n} is not norm(last block output)"
    return hs, pre_norm, out.logits[0, -1].float().numpy()


def logit_summary(last: np.ndarray) -> dict:
    d = last.astype(np.float64)
    m = d.max()
    return {
        "argmax": int(np.argmax(last)),
        "max": f32_list([last.max()])[0],
        "min": f32_list([last.min()])[0],
        "mean": float(d.mean()),
        "std": float(d.std()),
        "logsumexp": float(m + np.log(np.exp(d - m).sum())),
    }


def top_logits(last: np.ndarray, k: int) -> list:
    order = np.argsort(-last, kind="stable")[:k]
    return [[int(i), f32_list([last[i]])[0]] for i in order]


# ---------------------------------------------------------------------------
# Config, tensors and weight conventions


def gguf_metadata(reader) -> dict:
    """Every GGUF key with its value; big arrays (the vocabulary) as length plus a few entries."""
    out = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        v = field.contents()
        if isinstance(v, list) and len(v) > 16:
            first = v[:8]
            if key == "tokenizer.ggml.scores":
                first = f32_list(first)
            out[key] = {"array_length": len(v), "first_8": first}
        else:
            out[key] = v
    return out


def llama_qk_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rows -> the interleaved row order llama.cpp's converter uses for LLaMA Q/K (not used for Gemma)."""
    rows, cols = w.shape
    d = rows // n_head
    return w.reshape(n_head, 2, d // 2, cols).swapaxes(1, 2).reshape(rows, cols)


GGUF_TO_HF_BLOCK = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "post_attention_norm.weight": "post_attention_layernorm.weight",
    "ffn_norm.weight": "pre_feedforward_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
    "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
}


def hf_name(gname: str) -> str:
    if gname == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gname == "output_norm.weight":
        return "model.norm.weight"
    _, b, rest = gname.split(".", 2)
    return f"model.layers.{b}.{GGUF_TO_HF_BLOCK[rest]}"


def sentencepiece_model_proto(reader) -> bytes:
    """A SentencePiece ModelProto (BPE, byte fallback, identity normalizer) built from the GGUF vocabulary.

    Hand-encoded protobuf (no protobuf package needed): pieces with score and type, trainer_spec
    {model_type=BPE, byte_fallback, unk/bos/eos/pad ids}, normalizer_spec {identity, no dummy prefix,
    no whitespace folding, escape whitespace as U+2581}.
    """
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def key(field: int, wire: int) -> bytes:
        return varint((field << 3) | wire)

    def ld(field: int, payload: bytes) -> bytes:
        return key(field, 2) + varint(len(payload)) + payload

    def vint(field: int, value: int) -> bytes:
        return key(field, 0) + varint(value)

    f = reader.fields
    tokens = f["tokenizer.ggml.tokens"].contents()
    scores = f["tokenizer.ggml.scores"].contents()
    types = f["tokenizer.ggml.token_type"].contents()
    body = bytearray()
    for piece, score, ttype in zip(tokens, scores, types):
        if int(ttype) == 4:
            # The GGUF keeps the user-defined whitespace runs (ids 138-167) with real spaces; in the
            # SentencePiece model they are runs of U+2581, which is what the normalized text contains.
            piece = piece.replace(" ", "\u2581")
        sp = ld(1, piece.encode("utf-8")) + key(2, 5) + struct.pack("<f", score) + vint(3, int(ttype))
        body += ld(1, sp)
    trainer = (vint(3, 2) + vint(4, len(tokens)) + vint(35, 1)
               + vint(40, f["tokenizer.ggml.unknown_token_id"].contents())
               + vint(41, f["tokenizer.ggml.bos_token_id"].contents())
               + vint(42, f["tokenizer.ggml.eos_token_id"].contents())
               + vint(43, f["tokenizer.ggml.padding_token_id"].contents()))
    body += ld(2, trainer)
    body += ld(3, ld(1, b"identity") + vint(3, 0) + vint(4, 0) + vint(5, 1))
    return bytes(body)


def tokenizer_checks(tok, reader, extra_texts: list[str]) -> dict:
    import sentencepiece as spm

    f = reader.fields
    tokens = f["tokenizer.ggml.tokens"].contents()
    types = f["tokenizer.ggml.token_type"].contents()
    hf_pieces = tok.convert_ids_to_tokens(list(range(len(tokens))))
    differing_pieces = [i for i, (a, b) in enumerate(zip(tokens, hf_pieces)) if a != b]
    type_names = {1: "normal", 2: "unknown", 3: "control", 4: "user_defined", 5: "unused", 6: "byte"}
    type_counts: dict[str, int] = {}
    for t in types:
        type_counts[type_names.get(int(t), str(t))] = type_counts.get(type_names.get(int(t), str(t)), 0) + 1

    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(sentencepiece_model_proto(reader))
    corpus_path = Path(__file__).resolve().parent / "tokenizer_corpus.json"
    corpus = json.loads(corpus_path.read_text(encoding="utf-8")) if corpus_path.is_file() else []
    texts = list(corpus) + list(extra_texts)
    control_pieces = [p for p, t in zip(tokens, types) if int(t) == 3]
    mismatches = []
    categories: dict[str, int] = {}
    for t in texts:
        a = tok(t, add_special_tokens=False)["input_ids"]
        b = sp.encode(t)
        if a != b:
            if any(p in t for p in control_pieces):
                cat = "control token written in the text (HF matches it as one token; SentencePiece never does)"
            elif t.strip(" ") == "":
                cat = ("run of more than 31 spaces (HF's BPE merges give e.g. 16+16 for 32 spaces; SentencePiece "
                       "takes the longest user-defined piece, 31, first)")
            else:
                cat = "other"
            categories[cat] = categories.get(cat, 0) + 1
            mismatches.append({"text": t, "hf": a, "sentencepiece": b})
    return {
        "gguf_tokenizer_model": f["tokenizer.ggml.model"].contents(),
        "gguf_token_type_counts": type_counts,
        "hf_vocab_equals_gguf_tokens": not differing_pieces and len(tok) == len(tokens),
        "hf_vocab_size": len(tok),
        "hf_pieces_differing_from_gguf": {
            "count": len(differing_pieces),
            "ids": differing_pieces,
            "note": "the GGUF stores the user-defined whitespace runs with real spaces ('  ' ... 31 spaces); "
                    "HF's vocabulary spells them with U+2581 ('\u2581\u2581' ...); every other piece is identical",
        },
        "sentencepiece_cross_check": {
            "note": "the GGUF vocabulary (pieces, scores, types) written into a SentencePiece BPE ModelProto "
                    "(byte_fallback, identity normalizer, add_dummy_prefix=false, remove_extra_whitespaces=false, "
                    "spaces in user-defined pieces written as U+2581) "
                    "and encoded with the sentencepiece library, vs the HF tokenizer with add_special_tokens=False; "
                    "texts: scripts/reference/tokenizer_corpus.json plus this fixture's prompts",
            "texts": len(texts),
            "mismatches": len(mismatches),
            "mismatch_categories": categories,
            "mismatch_examples": mismatches[:10],
        },
    }


@torch.no_grad()
def make_config(tok, model, meta: dict, models: Path, out_dir: Path, extra_texts: list[str]) -> None:
    from gguf import GGUFReader
    from gguf.quants import dequantize

    cfg = model.config
    reader = GGUFReader(str(models / MODEL_FILE))
    tensors = {t.name: t for t in reader.tensors}
    type_counts: dict[str, int] = {}
    for t in reader.tensors:
        type_counts[t.tensor_type.name] = type_counts.get(t.tensor_type.name, 0) + 1

    sd = model.state_dict()
    n_blocks = cfg.num_hidden_layers

    # Every GGUF tensor vs the loaded parameter. Norms: the GGUF stores 1 + w (llama.cpp's converter
    # adds 1 because Gemma's RMSNorm multiplies by 1 + w); transformers' Gemma2TensorProcessor
    # subtracts 1 again (float32) and Gemma3RMSNorm computes x_norm * (1 + w).
    per_kind: dict[str, dict] = {}
    block0 = []
    for t in reader.tensors:
        gname = t.name
        hname = hf_name(gname)
        deq = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(sd[hname].shape)
        hf = sd[hname].float().numpy()
        is_norm = "norm" in gname
        kind = gname.split(".", 2)[-1] if gname.startswith("blk.") else gname
        entry = per_kind.setdefault(kind, {
            "hf_suffix": hname.split(".", 3)[-1] if gname.startswith("blk.") else hname,
            "gguf_type": t.tensor_type.name, "tensors": 0,
            "relation": "hf == gguf - 1 (float32)" if is_norm else "hf == gguf (same row order)",
            "all_exact": True, "max_abs_diff": 0.0,
        })
        entry["tensors"] += 1
        if is_norm:
            expect = (deq - np.float32(1.0)).astype(np.float32)
            back = (np.float32(1.0) + hf).astype(np.float32)  # what the HF forward multiplies by
            entry["max_abs_diff_one_plus_hf_vs_gguf"] = max(entry.get("max_abs_diff_one_plus_hf_vs_gguf", 0.0),
                                                            float(np.abs(back - deq).max()))
            entry["elements_where_one_plus_hf_differs_from_gguf"] = (
                entry.get("elements_where_one_plus_hf_differs_from_gguf", 0) + int((back != deq).sum()))
            entry["gguf_min"] = min(entry.get("gguf_min", np.inf), float(deq.min()))
            entry["gguf_max"] = max(entry.get("gguf_max", -np.inf), float(deq.max()))
        else:
            expect = deq
        exact = bool(np.array_equal(expect, hf))
        diff = float(np.abs(expect - hf).max())
        entry["all_exact"] = entry["all_exact"] and exact
        entry["max_abs_diff"] = max(entry["max_abs_diff"], diff)
        if gname.startswith("blk.0.") or not gname.startswith("blk."):
            row = {"gguf": gname, "hf": hname, "gguf_type": t.tensor_type.name,
                   "gguf_ne": [int(x) for x in t.shape], "hf_shape": list(hf.shape),
                   "relation": entry["relation"], "exactly_equal": exact, "max_abs_diff": diff}
            if gname in ("blk.0.attn_q.weight", "blk.0.attn_k.weight"):
                heads = cfg.num_attention_heads if "attn_q" in gname else cfg.num_key_value_heads
                row["max_abs_diff_if_llama_qk_interleave_were_undone"] = float(
                    np.abs(llama_qk_permute(deq, heads) - hf).max())
            block0.append(row)
        del deq

    samples = {}
    for gname in ("token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_v.weight", "blk.0.attn_output.weight",
                  "blk.0.ffn_down.weight", "blk.0.attn_q_norm.weight"):
        t = tensors[gname]
        rows = int(t.shape[1]) if len(t.shape) > 1 else 1
        # First 64 values (ne0-fastest order = row 0 of the HF [rows, cols] matrix) of row 0 and of the last row.
        flat0 = np.asarray(dequantize(t.data[:1] if rows > 1 else t.data, t.tensor_type), dtype=np.float32).ravel()
        samples[gname] = {"type": t.tensor_type.name, "row0_first_64": f32_list(flat0[:64])}
        if rows > 1:
            flat_last = np.asarray(dequantize(t.data[rows - 1:rows], t.tensor_type), dtype=np.float32).ravel()
            samples[gname]["last_row"] = rows - 1
            samples[gname]["last_row_first_64"] = f32_list(flat_last[:64])

    emb = model.model.embed_tokens
    attn0 = model.model.layers[0].self_attn
    rot = model.model.rotary_emb
    layer_types = list(cfg.layer_types)
    per_layer = []
    for i, lt in enumerate(layer_types):
        a = model.model.layers[i].self_attn
        per_layer.append({
            "block": i, "layer_type": lt,
            "rope_theta": cfg.rope_parameters[lt]["rope_theta"],
            "sliding_window": a.sliding_window,
        })
    hf_config = cfg.to_dict()
    hf_config.pop("quantization_config", None)

    write_json(out_dir / "gemma3_config.json", {
        "meta": meta,
        "gguf_metadata": gguf_metadata(reader),
        "gguf_keys_absent": {
            "note": "keys this GGUF does not carry; transformers falls back to Gemma3TextConfig defaults and "
                    "llama.cpp hard-codes the same values for gemma3",
            "rope_local_base_freq (sliding layers)": 10000.0,
            "sliding window pattern": "every 6th block global (blocks 5, 11, 17)",
            "query_pre_attn_scalar": 256,
            "final_logit_softcapping": None,
            "attn_logit_softcapping": None,
            "rope scaling": None,
            "tokenizer.chat_template": None,
        },
        "model_type": cfg.model_type,
        "architecture": type(model).__name__,
        "hf_config": hf_config,
        "summary": {
            "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.intermediate_size,
            "num_hidden_layers": n_blocks,
            "num_attention_heads": cfg.num_attention_heads,
            "num_key_value_heads": cfg.num_key_value_heads,
            "head_dim": cfg.head_dim,
            "vocab_size": cfg.vocab_size,
            "rms_norm_eps": cfg.rms_norm_eps,
            "hidden_activation": cfg.hidden_activation,
            "mlp": "down_proj(gelu_tanh(gate_proj(x)) * up_proj(x)); gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))",
            "sliding_window": cfg.sliding_window,
            "sliding_window_mask": "transformers: key kv is visible from query q iff kv <= q and kv > q - sliding_window, "
                                   "i.e. the query itself and the 511 tokens before it",
            "layer_types": layer_types,
            "global_blocks": [i for i, lt in enumerate(layer_types) if lt == "full_attention"],
            "rope_parameters": cfg.rope_parameters,
            "per_layer": per_layer,
            "rope_layout": "NeoX / half split: rotate_half pairs element i with i + head_dim/2 (cos/sin = "
                           "cat(freqs, freqs)); inv_freq[i] = 1 / theta^(2i/head_dim), i < head_dim/2. "
                           "GGUF Q/K rows are in the same order as HF (no interleave permutation)",
            "query_pre_attn_scalar": cfg.query_pre_attn_scalar,
            "attention_scaling": attn0.scaling,
            "attn_logit_softcapping": cfg.attn_logit_softcapping,
            "final_logit_softcapping": cfg.final_logit_softcapping,
            "final_logit_softcapping_applied": cfg.final_logit_softcapping is not None,
            "qk_norm": "RMSNorm over head_dim (256) on every query and key head, after the projection and before RoPE, "
                       "weight (1 + w) like the other norms; shared across heads",
            "block": "h = x + post_attention_layernorm(attn(input_layernorm(x))); "
                     "out = h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h)))",
            "rms_norm": "x * rsqrt(mean(x^2) + eps) * (1 + w), computed in float32; the GGUF stores 1 + w",
            "embed_scale": f32_list([emb.embed_scale])[0],
            "embed_scale_note": "float32(sqrt(hidden_size)) = float32(sqrt(640)); the embedding row is multiplied "
                                "by it in float32 (Gemma3TextScaledWordEmbedding)",
            "tie_word_embeddings": bool(cfg.tie_word_embeddings),
            "lm_head_shares_embedding_storage": model.lm_head.weight.data_ptr() == emb.weight.data_ptr(),
            "lm_head_scaled": False,
            "rotary_inv_freq_first_4": {lt: f32_list(getattr(rot, f"{lt}_inv_freq")[:4]) for lt in rot.layer_types},
            "rotary_attention_scaling": {lt: getattr(rot, f"{lt}_attention_scaling") for lt in rot.layer_types},
            "bos_token_id": cfg.bos_token_id,
            "eos_token_id": cfg.eos_token_id,
            "pad_token_id": cfg.pad_token_id,
        },
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
            "bos_added_by_default": tok("Hi")["input_ids"][:1] == [tok.bos_token_id],
            **tokenizer_checks(tok, reader, extra_texts),
        },
        "generation_config": model.generation_config.to_diff_dict(),
        "gguf_tensor_count": len(reader.tensors),
        "gguf_tensor_type_counts": type_counts,
        "gguf_shape_note": "gguf_ne lists ne0 first (the contiguous dimension): a [rows, cols] HF matrix is ne = [cols, rows]",
        "tensors_block0_and_global": block0,
        "weight_transform_check": {
            "note": "every GGUF tensor dequantized with gguf-py (float32) vs the parameter transformers loaded; "
                    "grouped by tensor kind over all 18 blocks. Norm weights (attn_norm, post_attention_norm, "
                    "ffn_norm, post_ffw_norm, attn_q_norm, attn_k_norm, output_norm) are stored as 1 + w and "
                    "loaded as w = gguf - 1; everything else is loaded unchanged, Q/K rows included",
            "kinds": per_kind,
        },
        "dequantized_samples": samples,
    })


# ---------------------------------------------------------------------------
# Hidden states and logits


@torch.no_grad()
def make_hidden(tok, model, meta: dict, out_dir: Path) -> None:
    n_layers = model.config.num_hidden_layers
    prompts = []
    logit_entries = []
    vocab = model.config.vocab_size
    sampled_ids = list(range(0, vocab, SAMPLED_LOGIT_STRIDE))
    for name, text in HIDDEN_PROMPTS:
        ids = tok(text)["input_ids"]
        ids_plain = tok(text, add_special_tokens=False)["input_ids"]
        t0 = time.perf_counter()
        hs, pre_norm, last = forward_single(model, ids)
        dt = time.perf_counter() - t0
        summary = logit_summary(last)
        entry = {
            "name": name,
            "text": text,
            "token_ids": ids,
            "bos_prepended": ids[:1] == [tok.bos_token_id] and ids[1:] == ids_plain,
            "num_tokens": len(ids),
            "last_position": {str(k): f32_list(hs[k][-1]) for k in HIDDEN_INDICES},
            "last_block_pre_norm_last_position": f32_list(pre_norm[-1]),
            "argmax": summary["argmax"],
            "max_abs_last_position": {str(k): float(np.abs(hs[k][-1]).max()) for k in HIDDEN_INDICES},
            "l2_norm_last_position": {str(k): float(np.linalg.norm(hs[k][-1].astype(np.float64)))
                                      for k in HIDDEN_INDICES},
            "max_abs_all_positions": {str(k): float(np.abs(hs[k]).max()) for k in HIDDEN_INDICES},
        }
        if name in ALL_POSITION_PROMPTS:
            entry["all_positions"] = {str(k): [f32_list(row) for row in hs[k]] for k in ALL_POSITION_INDICES}
        prompts.append(entry)
        logit_entries.append({
            "name": name,
            "text": text,
            "token_ids": ids,
            **summary,
            "top_logits": top_logits(last, TOP_K_LOGITS),
            "sampled_logits": f32_list(last[sampled_ids]),
        })
        print(f"  hidden {name}: {len(ids)} tokens ({dt:.2f} s), argmax {summary['argmax']} "
              f"{tok.decode([summary['argmax']])!r}, |h| last per index "
              + ", ".join(f"{k}:{entry['l2_norm_last_position'][str(k)]:.0f}" for k in HIDDEN_INDICES))

    write_json(out_dir / "gemma3_hidden.json", {
        "meta": dict(meta, **{
            "add_special_tokens": True,
            "add_special_tokens_note": "tokenizer defaults; the GGUF sets tokenizer.ggml.add_bos_token=true, so "
                                       "<bos> (id 2) is prepended and is position 0 of every prompt",
            "hidden_state_indexing": "index 0 = embedding output (embedding row * float32(sqrt(640))); index k = "
                                     "output of block k-1 (k < num_layers); index num_layers = output of the last "
                                     "block after the final RMSNorm (checked with hooks on every block)",
            "num_layers": n_layers,
            "hidden_indices": HIDDEN_INDICES,
            "all_position_indices": ALL_POSITION_INDICES,
            "all_position_prompts": ALL_POSITION_PROMPTS,
            "magnitudes_note": "the <bos> position carries much larger activations than the others (see "
                               "max_abs_all_positions vs max_abs_last_position); compare vectors with a tolerance "
                               "relative to their largest |value|",
            "last_block_pre_norm": "output of block num_layers-1 before the final norm (forward hook), last position",
        }),
        "prompts": prompts,
    })
    write_json(out_dir / "gemma3_logits.json", {
        "meta": dict(meta, **{
            "vocab_size": vocab,
            "final_logit_softcapping": model.config.final_logit_softcapping,
            "final_logit_softcapping_applied": model.config.final_logit_softcapping is not None,
            "logits_note": "last-position logits = tied embedding matrix (unscaled) times the index-18 hidden state; "
                           "no softcapping in this config",
            "top_logits": f"top {TOP_K_LOGITS} (token id, logit) of the last position, descending",
            "stats": "max/min as float32; mean, std (population) and logsumexp over all vocab_size logits in float64",
            "sampled_logits": f"logits of token ids 0, {SAMPLED_LOGIT_STRIDE}, {2 * SAMPLED_LOGIT_STRIDE}, ... "
                              f"({len(sampled_ids)} values)",
        }),
        "prompts": logit_entries,
    })


@torch.no_grad()
def make_greedy(tok, model, meta: dict, out_dir: Path) -> None:
    eos = model.generation_config.eos_token_id
    pad = tok.pad_token_id
    gen_config_before = model.generation_config.to_diff_dict()
    cases = []
    for name, text in GREEDY_CASES:
        ids = tok(text)["input_ids"]
        x = torch.tensor([ids], dtype=torch.long)
        t0 = time.perf_counter()
        out = model.generate(
            input_ids=x, attention_mask=torch.ones_like(x),
            do_sample=False, max_new_tokens=GREEDY_NEW_TOKENS, num_beams=1,
            temperature=None, top_p=None, top_k=None, repetition_penalty=None,
            eos_token_id=eos, pad_token_id=pad,
            return_dict_in_generate=True, output_scores=True,
        )
        dt = time.perf_counter() - t0
        new = out.sequences[0, len(ids):].tolist()
        margins = []
        for s in out.scores:
            top2 = torch.topk(s[0].float(), 2).values
            margins.append(float(top2[0] - top2[1]))
        stopped = bool(new and new[-1] == eos)
        case = {
            "name": name,
            "prompt_text": text,
            "prompt_ids": ids,
            "new_ids": new,
            "num_new_tokens": len(new),
            "stopped_on_eos": stopped,
            "text": tok.decode(new, skip_special_tokens=False),
            "text_skip_special": tok.decode(new, skip_special_tokens=True),
            "step_top2_margins": [round(m, 5) for m in margins],
            "min_top2_margin": round(min(margins), 6),
        }
        cases.append(case)
        print(f"  greedy {name}: {len(new)} tokens in {dt:.1f} s, eos={stopped}, "
              f"min margin {case['min_top2_margin']:.4f}: {case['text']!r}")

    write_json(out_dir / "gemma3_greedy.json", {
        "meta": dict(meta, **{
            "settings": {
                "do_sample": False, "num_beams": 1, "max_new_tokens": GREEDY_NEW_TOKENS,
                "eos_token_id": eos, "pad_token_id": pad, "use_cache": True,
                "temperature": None, "top_p": None, "top_k": None, "repetition_penalty": None,
            },
            "generation_config_from_gguf": gen_config_before,
            "prompt_note": "plain prompts tokenized with the defaults (<bos> prepended); the GGUF has no chat template",
            "eos_note": "the GGUF names only <eos> (1) as EOS; <end_of_turn> (106) is not an EOS here",
            "new_ids_note": "new tokens only; when generation stops on EOS the EOS id is the last entry",
            "margins_note": "step_top2_margins = best minus second-best logit at each generated step",
        }),
        "cases": cases,
    })


def long_text(tok) -> str:
    """Deterministic varied filler between LONG_HEAD and LONG_TAIL, sized to LONG_TARGET_TOKENS."""
    sentences = []
    i = 0
    while True:
        s = (f"{LONG_SUBJECTS[i % len(LONG_SUBJECTS)]} {LONG_VERBS[(i * 5) % len(LONG_VERBS)]} "
             f"{LONG_ENDINGS[(i * 7) % len(LONG_ENDINGS)]}")
        sentences.append(s)
        text = LONG_HEAD + " ".join(sentences) + LONG_TAIL
        n = len(tok(text)["input_ids"])
        if n >= (LONG_TARGET_TOKENS[0] + LONG_TARGET_TOKENS[1]) // 2:
            assert LONG_TARGET_TOKENS[0] <= n <= LONG_TARGET_TOKENS[1], n
            return text
        i += 1


@torch.no_grad()
def make_long(tok, model, meta: dict, out_dir: Path) -> None:
    text = long_text(tok)
    ids = tok(text)["input_ids"]
    n = len(ids)
    t0 = time.perf_counter()
    hs, pre_norm, last = forward_single(model, ids)
    dt = time.perf_counter() - t0
    summary = logit_summary(last)
    head_tokens = len(tok(LONG_HEAD)["input_ids"])
    print(f"  long: {n} tokens ({dt:.1f} s), argmax {summary['argmax']} {tok.decode([summary['argmax']])!r}")

    # Informational: how much the sliding window matters for this prompt. The masks are built from
    # config.sliding_window at every forward call; with full attention everywhere the sliding layers
    # see the whole prompt.
    sens = []
    ref = {k: hs[k][-1] for k in LONG_INDICES}
    saved = model.config.sliding_window
    variants = [("sliding_window=511", 511), ("sliding_window=513", 513), ("no sliding window (all full attention)", n + 1)]
    try:
        for label, window in variants:
            model.config.sliding_window = window
            hs2, _, last2 = forward_single(model, ids, check_indexing=False)
            sens.append({
                "variant": label,
                "max_abs_diff_last_position": {str(k): float(np.abs(hs2[k][-1] - ref[k]).max()) for k in LONG_INDICES},
                "max_abs_diff_last_logits": float(np.abs(last2 - last).max()),
                "argmax": int(np.argmax(last2)),
            })
    finally:
        model.config.sliding_window = saved
    for s in sens:
        print(f"    {s['variant']}: max |diff| idx17 {s['max_abs_diff_last_position']['17']:.3g}, "
              f"logits {s['max_abs_diff_last_logits']:.3g}, argmax {s['argmax']}")

    write_json(out_dir / "gemma3_long.json", {
        "meta": dict(meta, **{
            "purpose": "a prompt longer than the 512-token sliding window, so the sliding-window layers drop the "
                       "first tokens while the global layers (blocks 5, 11, 17) still see them",
            "hidden_indices": LONG_INDICES,
            "sliding_window": saved,
            "sliding_window_mask": "key kv is visible from query q iff q - sliding_window < kv <= q",
            "first_position_visible_to_last_query_in_sliding_layers": n - saved,
            "head_tokens_note": "the password sentence occupies positions 1 .. head_tokens-1 (after <bos>), all "
                                "outside the last position's sliding window",
        }),
        "text": text,
        "token_ids": ids,
        "num_tokens": n,
        "head_tokens": head_tokens,
        "last_position": {str(k): f32_list(hs[k][-1]) for k in LONG_INDICES},
        "last_block_pre_norm_last_position": f32_list(pre_norm[-1]),
        "max_abs_last_position": {str(k): float(np.abs(hs[k][-1]).max()) for k in LONG_INDICES},
        **summary,
        "top_logits": top_logits(last, LONG_TOP_K),
        "argmax_text": tok.decode([summary["argmax"]]),
        "window_sensitivity": {
            "note": "informational: the same forward pass with other masks; differences from the stored values "
                    "show how strongly this fixture tests the window (an off-by-one window moves it too)",
            "variants": sens,
        },
    })


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path(".cache/models"), help="folder holding " + MODEL_FILE)
    ap.add_argument("--out", type=Path, default=Path("Tests/RepengEngineTests/Fixtures/model"))
    ap.add_argument("--only", choices=["config", "hidden", "greedy", "long"], action="append",
                    help="write only these fixtures (repeatable)")
    args = ap.parse_args()

    if not (args.models / MODEL_FILE).is_file():
        print(f"error: {args.models / MODEL_FILE} not found; run scripts/bootstrap.sh", file=sys.stderr)
        return 1
    t_all = time.perf_counter()
    tok, model = load(args.models)
    print(f"loaded in {time.perf_counter() - t_all:.1f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    meta = common_meta(args.models, model)
    only = set(args.only or ["config", "hidden", "greedy", "long"])
    steps = [
        ("config", lambda: make_config(tok, model, meta, args.models, args.out,
                                       [t for _, t in HIDDEN_PROMPTS] + [t for _, t in GREEDY_CASES]
                                       + [long_text(tok)])),
        ("hidden", lambda: make_hidden(tok, model, meta, args.out)),
        ("greedy", lambda: make_greedy(tok, model, meta, args.out)),
        ("long", lambda: make_long(tok, model, meta, args.out)),
    ]
    for name, fn in steps:
        if name in only:
            t0 = time.perf_counter()
            fn()
            print(f"{name}: {time.perf_counter() - t0:.1f} s")
    print(f"total {time.perf_counter() - t_all:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
