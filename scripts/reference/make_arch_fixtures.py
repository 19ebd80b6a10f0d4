# Tiny random GPT-2, Qwen3, Qwen2, Mistral, Phi-3 and Gemma-2 checkpoints converted with llama.cpp's own converter, with golden Hugging Face transformers outputs (hidden states, logits, greedy, repeng steering) per family.
"""Writes the per-architecture golden fixtures in Tests/RepengEngineTests/Fixtures/arch/.

Run by hand with the reference environment described in scripts/reference/README.md and an
extracted llama-cpp-python source distribution (its vendored llama.cpp holds the converter):

    /work/venv-ref/bin/python scripts/reference/make_arch_fixtures.py \\
        --llama-cpp /tmp/llama_cpp_python-0.3.36/vendor/llama.cpp \\
        --out Tests/RepengEngineTests/Fixtures/arch [--families gemma2] \\
        [--hf-out Tests/RepengEngineTests/Fixtures/hf [--hf-only]]

For every family a tiny random float32 checkpoint (3 blocks, 4 for gemma2, hidden 64, seeded) and a tiny
tokenizer trained here are saved with ``save_pretrained`` into a temporary folder, converted with
``convert_hf_to_gguf.py --outtype f32`` (run in a child process with the vendored ``gguf-py`` first
on PYTHONPATH, so the converter and its gguf package match), and then

  <family>.gguf   the converter's output, unchanged
  <family>.json   the HF config, the GGUF metadata and tensor list, a numerical check of every GGUF
                  tensor against the HF parameter it came from, a reference forward pass computed
                  from the GGUF tensors and metadata alone (float64) compared with transformers,
                  per-prompt hidden states / logits / greedy continuations from transformers,
                  a repeng steering check and the per-family facts an engine needs.

The converter identifies BPE pre-tokenizers by hashing its output on a fixed text and refuses
unknown ones; a freshly trained vocabulary never matches, so for the byte-level BPE families the
child process replaces ``TextModel.get_vocab_base_pre`` with a function that returns the standard
name for the family ("gpt-2", "qwen2") and records the hash it computed. Nothing else in the
converter is changed and no llama.cpp file is copied into this repository.

Gemma-2 (``Gemma2ForCausalLM`` -> GGUF arch ``gemma2``): 4 blocks so that both attention kinds of its
alternating pattern appear twice (HF layer_types: even blocks sliding, odd blocks full; llama.cpp: swa
pattern 2, the same blocks), sliding_window 16 (the GGUF carries it, so transformers WITH the window is
the reference), attention / final logit softcaps reduced to 5 / 3 so that the tiny random model reaches
them (the "sensitivity" section records how much the logits move without either cap), and a tiny
SentencePiece BPE tokenizer with Gemma's special ids (<pad> 0, <eos> 1, <bos> 2, <unk> 3, <mask> 4) and
no dummy prefix. The converter stores every Gemma norm weight as 1 + w (HF computes x_norm * (1 + w)).

With ``--hf-out DIR`` the saved folder itself (config.json, generation_config.json, model.safetensors,
tokenizer.json, tokenizer_config.json, tokenizer.model where there is one) is copied to ``DIR/<family>/`` for
engines that load Hugging Face folders; it is the checkpoint the fixture's outputs come from (no weight is
changed after saving), which is checked by reloading the copy with ``from_pretrained(dtype=torch.float32)`` and
comparing the last-position logits of the first two prompts with ``<family>.json`` as it is on disk. Three
variants are written next to them, each with an ``expected.json`` (for prompts p5 and p17: last-position logits,
12 greedy ids, last-position hidden states of every index) computed by loading that variant folder in float32:
``qwen2-sharded`` (``save_pretrained(max_shard_size="200KB")``: several shards and a
``model.safetensors.index.json``), ``qwen3-bf16`` and ``mistral-f16`` (the checkpoint cast to bfloat16 / float16
and saved). ``--hf-only`` builds and saves the checkpoints only (no conversion, nothing written to ``--out``) and
checks the folders against the existing fixtures.

Hidden-state indexing (``output_hidden_states=True``) as in the other fixture scripts: index 0 is
the embedding output (token + position embedding for GPT-2, token embedding * sqrt(hidden) for
Gemma-2), index k (1 <= k < n_layers) the output
of block k-1, and the last index (n_layers) the output of the last block AFTER the final norm; the
raw last block output is captured with a forward hook and stored separately. All computation is
float32 on the CPU with attn_implementation="eager".
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FAMILIES = ["gpt2", "qwen3", "qwen2", "mistral", "phi3", "gemma2"]  # the index is part of the seed: append only
N_LAYERS = 3
# Gemma-2 alternates sliding (even) and full (odd) blocks: 4 blocks show each kind twice.
N_LAYERS_OF = {"gemma2": 4}
HIDDEN = 64
MAX_POS = 128
GREEDY_NEW_TOKENS = 12
STEER_LAYERS = [0, 2]
STEER_COEFFICIENTS = [2.0, 4.0, 8.0, 16.0, 32.0]
PROMPT_LENGTHS = [("p1", 1), ("p5", 5), ("p17", 17), ("p40", 40)]
ALL_POSITION_PROMPT = "p40"
THREADS = 1
BASE_SEED = 20240601
# Prompt ids are redrawn until every greedy step (and, for mistral, the no-window variant too) wins by at
# least this logit margin, so float reordering in another implementation cannot flip a greedy choice.
MIN_GREEDY_MARGIN = 0.02
MAX_PROMPT_DRAWS = 200

# Short texts whose HF token ids are stored (the engine's tokenizer may or may not match them).
TOKENIZER_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    " Hello  world\n\tcode: x = 42",
    "caf\u00e9 \u6771\u4eac 3.14",
]

# Training text for the tiny tokenizers (ASCII only, so a SentencePiece vocabulary of a few hundred
# pieces covers every character; other characters go through byte fallback).
CORPUS = """\
The quick brown fox jumps over the lazy dog. A small engine reads the model file and runs every block in order.
Once upon a time, in a small village between two mountains, there lived an old clockmaker who repaired watches.
The capital of France is Paris, and the capital of Germany is Berlin. Water boils at one hundred degrees.
def square(x):
    return x * x

for i in range(10):
    print(i, square(i))
Invoice 4471: 3 items at 19.99 each, total 59.97 due on 2024-03-15. Call 555-0123 for help.
I think that the weather will be fine tomorrow, but we should take an umbrella just in case it rains.
She said that the meeting was moved to Thursday afternoon, after the lunch break, in the second room.
The control vector is added to the hidden state of each chosen layer, at every position of the prompt.
Hidden states are compared with a tolerance relative to the largest value of each vector.
They walked along the harbour, counted the boats in the bay and watched the gulls over the cliffs.
The baker sold bread at the market while the fisherman mended a torn sail before the sun went down.
In the beginning the program opens the file, checks the header, reads the metadata and maps the tensors.
Numbers such as 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 42, 100, 256 and 1024 appear in many technical texts.
Questions like "what is the answer?" and exclamations like "look out!" use punctuation: commas, colons; dashes.
if (a < b) { return a + b; } else { return a - b; }
The teacher asked the students to write a short poem about the ocean, the wind and the long summer days.
We've been told he's there; you're sure? I'll make it, they'd like some tea, it's fine, don't worry.
A tokenizer splits text into pieces, maps each piece to an id, and the model predicts the next id.
Greedy decoding always takes the most likely next token; sampling draws it from the distribution instead.
Mountains, rivers, forests and deserts cover the land; oceans and seas cover most of the planet.
The library opens at nine in the morning and closes at six in the evening, except on Sundays.
"""


def n_layers_of(family: str) -> int:
    return N_LAYERS_OF.get(family, N_LAYERS)


def log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------
# Converter child process (runs with the vendored gguf-py first on sys.path)

def convert_worker(spec_json: str) -> int:
    spec = json.loads(spec_json)
    llama_cpp = Path(spec["llama_cpp"])
    for p in (str(llama_cpp), str(llama_cpp / "gguf-py")):
        if p not in sys.path:
            sys.path.insert(0, p)
    import logging

    import gguf  # noqa: F401  (must be the vendored one)
    import convert_hf_to_gguf
    from conversion import base as conv_base

    report = {
        "gguf_module": str(Path(gguf.__file__).resolve()),
        "gguf_module_is_vendored": str(Path(gguf.__file__).resolve()).startswith(str((llama_cpp / "gguf-py").resolve())),
        "pre_tokenizer": None,
        "warnings": [],
    }

    class Capture(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if record.levelno >= logging.WARNING and msg.strip() and not set(msg.strip()) <= {"*", "\n"}:
                report["warnings"].append(msg.strip())

    logging.getLogger().addHandler(Capture())
    forced = spec.get("force_pre_tokenizer")
    if forced:
        original = conv_base.TextModel.get_vocab_base_pre

        def get_vocab_base_pre(self, tokenizer):
            hashes = []

            class HashGrab(logging.Handler):
                def emit(self, record):
                    msg = record.getMessage()
                    if "chkhsh:" in msg:
                        hashes.append(msg.split("chkhsh:")[1].strip())

            grab = HashGrab()
            conv_base.logger.addHandler(grab)
            try:
                res = original(self, tokenizer)
                report["pre_tokenizer"] = {"detected": res, "forced": None, "chkhsh": hashes[-1] if hashes else None}
                return res
            except NotImplementedError:
                report["pre_tokenizer"] = {"detected": None, "forced": forced, "chkhsh": hashes[-1] if hashes else None,
                                           "note": "the hash of the tiny vocabulary is unknown to the converter; "
                                                   "get_vocab_base_pre was wrapped to return the family's standard name"}
                report["warnings"] = [w for w in report["warnings"] if "pre-tokenizer" not in w
                                      and "chkhsh" not in w and "convert_hf_to_gguf_update" not in w
                                      and "reasons for this" not in w and "ref:" not in w
                                      and "has not been added" not in w and "has changed upstream" not in w
                                      and "Check your model files" not in w]
                return forced
            finally:
                conv_base.logger.removeHandler(grab)

        conv_base.TextModel.get_vocab_base_pre = get_vocab_base_pre

    sys.argv = ["convert_hf_to_gguf.py", spec["model_dir"], "--outfile", spec["outfile"], "--outtype", "f32"]
    convert_hf_to_gguf.main()
    Path(spec["report"]).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "--convert-worker":
    sys.exit(convert_worker(sys.argv[2]))


# ---------------------------------------------------------------------------
# Main process

import importlib.metadata  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_model_fixtures import f32_base64, f32_list, sha256, to_json  # noqa: E402


def write_json(path: Path, obj) -> None:
    text = to_json(obj) + "\n"
    path.write_text(text, encoding="utf-8")
    log(f"wrote {path} ({len(text.encode('utf-8')) / 1024:.1f} KiB)")


def versions() -> dict:
    v = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}
    for pkg in ("gguf", "numpy", "tokenizers", "sentencepiece", "repeng", "safetensors"):
        v[pkg] = importlib.metadata.version(pkg)
    return v


def llama_cpp_info(llama_cpp: Path) -> dict:
    """Version of the llama-cpp-python sdist the llama.cpp folder came from, and of its gguf-py."""
    info = {"llama_cpp_folder": f"{llama_cpp.parent.parent.name}/{llama_cpp.parent.name}/{llama_cpp.name}"}
    pkg_info = llama_cpp.parent.parent / "PKG-INFO"
    if pkg_info.is_file():
        for line in pkg_info.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Name:"):
                info["package"] = line.split(":", 1)[1].strip()
            if line.startswith("Version:"):
                info["llama_cpp_python_version"] = line.split(":", 1)[1].strip()
                break
    for line in (llama_cpp / "gguf-py" / "pyproject.toml").read_text().splitlines():
        if line.startswith("version"):
            info["vendored_gguf_py_version"] = line.split("=", 1)[1].strip().strip('"')
            break
    h = hashlib.sha256()
    files = [llama_cpp / "convert_hf_to_gguf.py"] + sorted((llama_cpp / "conversion").glob("*.py")) \
        + sorted((llama_cpp / "gguf-py" / "gguf").rglob("*.py"))
    for f in files:
        h.update(f.relative_to(llama_cpp).as_posix().encode() + b"\0" + f.read_bytes())
    info["converter_sources_sha256"] = h.hexdigest()
    info["converter_sources_note"] = ("sha256 over convert_hf_to_gguf.py, conversion/*.py and gguf-py/gguf/**/*.py "
                                      "(relative path, NUL, contents, sorted)")
    return info


# ---------------------------------------------------------------------------
# Tokenizers

def corpus_lines() -> list[str]:
    return [l for l in CORPUS.splitlines() if l.strip()] * 4


QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")


def make_bpe_tokenizer(family: str, out_dir: Path) -> dict:
    """Byte-level BPE (vocab 384) saved as a tokenizer.json-based HF tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    if family == "gpt2":
        specials = ["<|endoftext|>"]
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:  # qwen2 / qwen3: NFC, the Qwen2 split regex, then byte-level without its own regex
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False),
        ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=specials, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus_lines(), trainer)
    if family == "gpt2":
        hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                     unk_token="<|endoftext|>")
        ids = {"bos": tok.token_to_id("<|endoftext|>"), "eos": tok.token_to_id("<|endoftext|>"), "pad": None}
    else:
        hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
        ids = {"bos": None, "eos": tok.token_to_id("<|im_end|>"), "pad": tok.token_to_id("<|endoftext|>")}
    hf.save_pretrained(out_dir)
    return {"kind": "byte-level BPE (tokenizers BpeTrainer, vocab 384, min_frequency 2)",
            "special_tokens": specials, "ids": ids, "n_tokens": tok.get_vocab_size(),
            "first_normal_id": len(specials)}


def make_sp_tokenizer(family: str, out_dir: Path, work: Path) -> dict:
    """SentencePiece BPE with byte fallback (vocab 416) as tokenizer.model, plus the HF LlamaTokenizer of it."""
    import sentencepiece as spm
    from transformers import LlamaTokenizer
    from transformers.tokenization_utils_sentencepiece import SentencePieceExtractor

    text_file = work / "corpus.txt"
    text_file.write_text("\n".join(corpus_lines()) + "\n", encoding="utf-8")
    prefix = work / "sp"
    spm.SentencePieceTrainer.train(
        input=str(text_file), model_prefix=str(prefix), vocab_size=416, model_type="bpe", byte_fallback=True,
        character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, add_dummy_prefix=True,
        remove_extra_whitespaces=False, split_digits=True, normalization_rule_name="identity",
        num_threads=1, seed_sentencepiece_size=100000, minloglevel=2)
    model_file = out_dir / "tokenizer.model"
    model_file.write_bytes(Path(str(prefix) + ".model").read_bytes())
    vocab, _scores, merges = SentencePieceExtractor(str(model_file)).extract()
    n_sp = len(vocab)
    extra = {}
    if family == "phi3":
        added = ["<|endoftext|>", "<|assistant|>", "<|user|>", "<|end|>"]
        for i, t in enumerate(added):
            vocab[t] = n_sp + i
        hf = LlamaTokenizer(vocab=vocab, merges=merges, unk_token="<unk>", bos_token="<s>", eos_token="<|endoftext|>",
                            pad_token="<|endoftext|>", add_bos_token=False, legacy=False)
        hf.add_special_tokens({"additional_special_tokens": added[1:]})
        ids = {"bos": 1, "eos": n_sp, "pad": n_sp}
        extra["added_tokens"] = {t: n_sp + i for i, t in enumerate(added)}
    else:
        hf = LlamaTokenizer(vocab=vocab, merges=merges, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                            add_bos_token=True, legacy=False)
        ids = {"bos": 1, "eos": 2, "pad": None}
    hf.save_pretrained(out_dir)
    model_file.write_bytes(Path(str(prefix) + ".model").read_bytes())  # keep it next to tokenizer.json
    return dict({"kind": "SentencePiece BPE (byte_fallback, add_dummy_prefix, identity normalizer, vocab 416) "
                         "as tokenizer.model; HF side: LlamaTokenizer built from its pieces and merges",
                 "ids": ids, "n_tokens": len(hf), "sentencepiece_pieces": n_sp, "first_normal_id": 3 + 256}, **extra)


GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]  # ids 0..4 as in Gemma's own vocabulary


def make_gemma_tokenizer(out_dir: Path, work: Path) -> dict:
    """SentencePiece BPE with byte fallback (vocab 416) laid out like Gemma's: <pad> 0, <eos> 1, <bos> 2, <unk> 3,
    <mask> 4 (a control symbol, so that the GGUF marks it CONTROL as in Gemma's own GGUFs: the converter maps
    sentencepiece's user-defined type to NORMAL, and transformers 5 writes no added_tokens_decoder into
    tokenizer_config.json), then the 256 byte pieces; no dummy prefix (Gemma's tokenizer.model has
    add_dummy_prefix = false and llama.cpp's Gemma2 converter writes add_space_prefix = false). HF side:
    GemmaTokenizer built from its pieces and merges."""
    import sentencepiece as spm
    from transformers import GemmaTokenizer
    from transformers.tokenization_utils_sentencepiece import SentencePieceExtractor

    text_file = work / "corpus.txt"
    text_file.write_text("\n".join(corpus_lines()) + "\n", encoding="utf-8")
    prefix = work / "sp"
    spm.SentencePieceTrainer.train(
        input=str(text_file), model_prefix=str(prefix), vocab_size=416, model_type="bpe", byte_fallback=True,
        character_coverage=1.0, pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>",
        bos_piece="<bos>", unk_piece="<unk>", control_symbols=["<mask>"], add_dummy_prefix=False,
        remove_extra_whitespaces=False, split_digits=True, normalization_rule_name="identity",
        num_threads=1, seed_sentencepiece_size=100000, minloglevel=2)
    model_file = out_dir / "tokenizer.model"
    model_file.write_bytes(Path(str(prefix) + ".model").read_bytes())
    vocab, _scores, merges = SentencePieceExtractor(str(model_file)).extract()
    assert [vocab[t] for t in GEMMA_SPECIALS] == list(range(len(GEMMA_SPECIALS))), "special ids are not Gemma's"
    n_sp = len(GEMMA_SPECIALS)
    assert vocab["<0x00>"] == n_sp and vocab["<0xFF>"] == n_sp + 255, "byte pieces do not follow the specials"
    hf = GemmaTokenizer(vocab=vocab, merges=merges, unk_token="<unk>", bos_token="<bos>", eos_token="<eos>",
                        pad_token="<pad>", mask_token="<mask>", add_bos_token=True, add_eos_token=False)
    hf.save_pretrained(out_dir)
    model_file.write_bytes(Path(str(prefix) + ".model").read_bytes())  # keep it next to tokenizer.json
    return {"kind": "SentencePiece BPE (byte_fallback, no dummy prefix, identity normalizer, split_digits, vocab 416; "
                    "<pad> 0, <eos> 1, <bos> 2, <unk> 3, <mask> 4 control, bytes 5..260) as tokenizer.model; "
                    "HF side: GemmaTokenizer built from its pieces and merges",
            "ids": {"bos": 2, "eos": 1, "pad": 0, "unk": 3, "mask": 4}, "n_tokens": len(hf),
            "sentencepiece_pieces": len(vocab), "first_normal_id": len(GEMMA_SPECIALS) + 256}


# ---------------------------------------------------------------------------
# Models

def make_config(family: str, tok_info: dict, vocab_size: int):
    from transformers import Gemma2Config, GPT2Config, MistralConfig, Phi3Config, Qwen2Config, Qwen3Config

    ids = tok_info["ids"]
    common = dict(vocab_size=vocab_size, max_position_embeddings=MAX_POS, bos_token_id=ids["bos"],
                  eos_token_id=ids["eos"], pad_token_id=ids["pad"])
    if family == "gpt2":
        return GPT2Config(vocab_size=vocab_size, n_positions=MAX_POS, n_ctx=MAX_POS, n_embd=HIDDEN, n_layer=N_LAYERS,
                          n_head=4, n_inner=None, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                          attn_pdrop=0.0, layer_norm_epsilon=1e-5, bos_token_id=ids["bos"], eos_token_id=ids["eos"],
                          tie_word_embeddings=True)
    if family == "qwen2":
        return Qwen2Config(hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=N_LAYERS,
                           num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6,
                           rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                           use_sliding_window=False, tie_word_embeddings=False, hidden_act="silu", **common)
    if family == "qwen3":
        # head_dim 32 with 4 heads: the q projection (128 rows) is wider than the hidden size, as in real Qwen3.
        return Qwen3Config(hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=N_LAYERS,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6,
                           rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, attention_bias=False,
                           use_sliding_window=False, tie_word_embeddings=True, hidden_act="silu", **common)
    if family == "mistral":
        return MistralConfig(hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=N_LAYERS,
                             num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5,
                             rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, sliding_window=16,
                             tie_word_embeddings=False, hidden_act="silu", **common)
    if family == "phi3":
        return Phi3Config(hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=N_LAYERS,
                          num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                          original_max_position_embeddings=MAX_POS, rope_scaling=None,
                          rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                          resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0, sliding_window=None,
                          tie_word_embeddings=False, hidden_act="silu", **common)
    if family == "gemma2":
        # query_pre_attn_scalar = head_dim (= hidden / heads = 16): HF scales by query_pre_attn_scalar^-0.5, llama.cpp
        # by 1/sqrt(key_length) (the GGUF has no query_pre_attn_scalar key), so both are 1/4 here. layer_types is
        # left to Gemma2Config's default (block i sliding iff i is even).
        return Gemma2Config(hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=n_layers_of(family),
                            num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6,
                            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                            hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=16, sliding_window=16,
                            attn_logit_softcapping=GEMMA2_ATTN_SOFTCAP, final_logit_softcapping=GEMMA2_FINAL_SOFTCAP,
                            attention_bias=False, attention_dropout=0.0, tie_word_embeddings=True, **common)
    raise ValueError(family)


# Published Gemma-2 values are 50 (attention) and 30 (final); the tiny random model's attention scores (std ~2.5)
# and logits (|z| up to ~4) would hardly reach those, so smaller caps make the tanh bend measurably.
GEMMA2_ATTN_SOFTCAP = 5.0
GEMMA2_FINAL_SOFTCAP = 3.0


INIT_NOTE = ("after construction every parameter is redrawn from torch.manual_seed(seed) in named_parameters() "
             "order: 1-D weights (norm gains) 1 + N(0, 0.1^2); biases N(0, 0.1^2); token embedding N(0, 0.15^2); "
             "GPT-2 position embedding N(0, 0.2^2); untied lm_head N(0, 0.3^2); q/k projections (and the fused qkv) "
             "N(0, 0.2^2); every other matrix N(0, 0.15^2). Gemma-2 norm weights w (HF computes x_norm * (1 + w)) "
             "are drawn as N(0, 0.1^2), so the effective gain 1 + w has the same distribution as the other families'")


@torch.no_grad()
def init_weights(model, seed: int) -> None:
    torch.manual_seed(seed)
    gemma = model.config.model_type == "gemma2"
    for name, p in model.named_parameters():
        if name.endswith(".bias"):
            p.copy_(torch.randn_like(p) * 0.1)
        elif p.ndim == 1 and gemma:  # Gemma2RMSNorm multiplies by (1 + w)
            p.copy_(torch.randn_like(p) * 0.1)
        elif p.ndim == 1:
            p.copy_(1.0 + torch.randn_like(p) * 0.1)
        elif name.endswith(("embed_tokens.weight", "wte.weight")):
            p.copy_(torch.randn_like(p) * 0.15)
        elif name.endswith("wpe.weight"):
            p.copy_(torch.randn_like(p) * 0.2)
        elif name.startswith("lm_head"):
            p.copy_(torch.randn_like(p) * 0.3)
        elif any(s in name for s in ("q_proj", "k_proj", "qkv_proj", "c_attn")):
            p.copy_(torch.randn_like(p) * 0.2)
        else:
            p.copy_(torch.randn_like(p) * 0.15)


def layers_of(model):
    return model.transformer.h if hasattr(model, "transformer") else model.model.layers


def final_norm_of(model):
    return model.transformer.ln_f if hasattr(model, "transformer") else model.model.norm


@torch.no_grad()
def forward_single(model, ids: list[int], check_indexing: bool = True):
    """(hidden_states as [T, H] arrays, raw last-block output [T, H], logits [T, V]); checks the index semantics."""
    layers = layers_of(model)
    captured: dict[int, torch.Tensor] = {}

    def make_hook(i):
        def hook(_m, _inp, out):
            captured[i] = (out[0] if isinstance(out, tuple) else out).detach().clone()
        return hook

    handles = [layers[i].register_forward_hook(make_hook(i)) for i in range(len(layers))]
    try:
        x = torch.tensor([ids], dtype=torch.long)
        out = model(input_ids=x, attention_mask=torch.ones_like(x), output_hidden_states=True, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    n = len(layers)
    hs = tuple(h[0].float().numpy() for h in out.hidden_states)
    assert len(hs) == n + 1, len(hs)
    raw = captured[n - 1][0].float().numpy()
    if check_indexing:
        if hasattr(model, "transformer"):
            pos = torch.arange(len(ids))
            emb = (model.transformer.wte(x[0]) + model.transformer.wpe(pos)).numpy()
        else:
            emb = model.model.embed_tokens(x[0]).numpy()
        assert np.array_equal(hs[0], emb), "index 0 is not the embedding output"
        for k in range(1, n):
            assert np.array_equal(hs[k], captured[k - 1][0].numpy()), f"index {k} is not block {k - 1}"
        assert np.array_equal(final_norm_of(model)(torch.from_numpy(raw)).numpy(), hs[n]), "last index is not norm(raw)"
    return hs, raw, out.logits[0].float().numpy()


def greedy_manual(model, ids: list[int], n_new: int) -> list[int]:
    """Greedy continuation by full forward passes (no cache, no stopping)."""
    seq = list(ids)
    with torch.no_grad():
        for _ in range(n_new):
            x = torch.tensor([seq], dtype=torch.long)
            logits = model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=False).logits[0, -1]
            seq.append(int(torch.argmax(logits)))
    return seq[len(ids):]


def greedy_generate(model, ids: list[int], pad_id: int) -> tuple[list[int], list[float]]:
    from transformers import GenerationConfig

    gc = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=GREEDY_NEW_TOKENS, eos_token_id=None,
                          pad_token_id=pad_id, repetition_penalty=1.0, temperature=None, top_p=None, top_k=None,
                          return_dict_in_generate=True, output_scores=True)
    x = torch.tensor([ids], dtype=torch.long)
    with torch.no_grad():
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=gc)
    new = out.sequences[0, len(ids):].tolist()
    margins = []
    for s in out.scores:
        top2 = torch.topk(s[0].float(), 2).values
        margins.append(float(top2[0] - top2[1]))
    return new, margins


# ---------------------------------------------------------------------------
# GGUF reading and tensor checks

def gguf_metadata(reader) -> dict:
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
        elif isinstance(v, float):
            out[key] = f32_list([v])[0] if field.types and field.types[0].name == "FLOAT32" else v
        else:
            out[key] = v
    return out


def gguf_tensors(reader) -> dict[str, np.ndarray]:
    out = {}
    for t in reader.tensors:
        assert t.tensor_type.name == "F32", (t.name, t.tensor_type.name)
        out[t.name] = np.array(t.data, dtype=np.float32).reshape([int(x) for x in reversed(t.shape)])
    return out


HF_OF_GGUF_LLAMA = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight", "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.weight": "self_attn.k_proj.weight", "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.weight": "self_attn.v_proj.weight", "attn_v.bias": "self_attn.v_proj.bias",
    "attn_q_norm.weight": "self_attn.q_norm.weight", "attn_k_norm.weight": "self_attn.k_norm.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_qkv.weight": "self_attn.qkv_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_down.weight": "mlp.down_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
}
HF_OF_GGUF_GPT2 = {
    "attn_norm.weight": "ln_1.weight", "attn_norm.bias": "ln_1.bias",
    "attn_qkv.weight": "attn.c_attn.weight", "attn_qkv.bias": "attn.c_attn.bias",
    "attn_output.weight": "attn.c_proj.weight", "attn_output.bias": "attn.c_proj.bias",
    "ffn_norm.weight": "ln_2.weight", "ffn_norm.bias": "ln_2.bias",
    "ffn_up.weight": "mlp.c_fc.weight", "ffn_up.bias": "mlp.c_fc.bias",
    "ffn_down.weight": "mlp.c_proj.weight", "ffn_down.bias": "mlp.c_proj.bias",
}


HF_OF_GGUF_GEMMA2 = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
    "post_attention_norm.weight": "post_attention_layernorm.weight",
    "ffn_norm.weight": "pre_feedforward_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
    "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
}


def hf_name_of(family: str, gname: str) -> str:
    if family == "gpt2":
        glob = {"token_embd.weight": "transformer.wte.weight", "position_embd.weight": "transformer.wpe.weight",
                "output_norm.weight": "transformer.ln_f.weight", "output_norm.bias": "transformer.ln_f.bias",
                "output.weight": "lm_head.weight"}
        if gname in glob:
            return glob[gname]
        _, b, rest = gname.split(".", 2)
        return f"transformer.h.{b}.{HF_OF_GGUF_GPT2[rest]}"
    glob = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
            "output.weight": "lm_head.weight"}
    if gname in glob:
        return glob[gname]
    _, b, rest = gname.split(".", 2)
    if family == "phi3" and rest == "ffn_up.weight":
        return f"model.layers.{b}.mlp.gate_up_proj.weight"
    if family == "gemma2":
        return f"model.layers.{b}.{HF_OF_GGUF_GEMMA2[rest]}"
    return f"model.layers.{b}.{HF_OF_GGUF_LLAMA[rest]}"


def llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's LlamaModel.permute: HF rows -> the interleaved order (GGUF row 2i+j of a head = HF row j*d/2+i)."""
    shape = w.shape
    return w.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def tensor_checks(family: str, cfg, sd: dict, tensors: dict[str, np.ndarray], reader) -> tuple[list, dict]:
    n_head = cfg.num_attention_heads
    n_kv = getattr(cfg, "num_key_value_heads", None) or n_head
    rows = []
    summary: dict[str, dict] = {}
    used_hf = set()
    types = {t.name: t for t in reader.tensors}
    for gname, g in tensors.items():
        hname = hf_name_of(family, gname)
        hf = sd[hname].float().numpy()
        used_hf.add(hname)
        candidates = [("identity", hf)]
        if family == "gemma2" and gname.endswith("norm.weight"):
            # the converter's Gemma2Model.modify_tensors adds 1 (float32) to every *norm.weight
            candidates = [("gguf = 1 + hf (float32; Gemma RMSNorm multiplies by 1 + w)",
                           (hf + np.float32(1.0)).astype(np.float32))]
        if hf.ndim == 2:
            candidates.append(("transpose (HF Conv1D stores [in, out])", hf.T))
        if gname.endswith(("attn_q.weight", "attn_q.bias")):
            candidates.append((f"llama permute (n_head={n_head}): GGUF row 2i+j of each head = HF row j*head_dim/2+i",
                               llama_permute(hf, n_head)))
        if gname.endswith(("attn_k.weight", "attn_k.bias")):
            candidates.append((f"llama permute (n_head_kv={n_kv}): GGUF row 2i+j of each head = HF row j*head_dim/2+i",
                               llama_permute(hf, n_kv)))
        relation = None
        for label, cand in candidates:
            if cand.shape == g.shape and np.array_equal(cand, g):
                relation = label
                break
        if relation is None:
            raise RuntimeError(f"{family}: no known relation between GGUF {gname} and HF {hname}")
        untransformed = float(np.abs(hf - g).max()) if hf.shape == g.shape else None
        t = types[gname]
        row = {"gguf": gname, "hf": hname, "gguf_type": t.tensor_type.name, "gguf_ne": [int(x) for x in t.shape],
               "array_shape": list(g.shape), "hf_shape": list(hf.shape), "relation": relation, "exact": True}
        if relation != "identity":
            row["max_abs_diff_gguf_vs_untransformed_hf"] = untransformed
        kind = gname.split(".", 2)[-1] if gname.startswith("blk.") else gname
        s = summary.setdefault(kind, {"hf": hname.split(".", 3)[-1] if gname.startswith("blk.") else hname,
                                      "relation": relation, "tensors": 0})
        assert s["relation"] == relation
        s["tensors"] += 1
        if gname.startswith("blk.0.") or not gname.startswith("blk."):
            rows.append(row)
    not_in_gguf = sorted(set(sd) - used_hf)
    tied = "output.weight" not in tensors
    for n in not_in_gguf:
        if not (tied and n == "lm_head.weight"):
            raise RuntimeError(f"{family}: HF parameter {n} has no GGUF tensor")
    return rows, {"per_kind": summary, "hf_params_without_gguf_tensor": not_in_gguf,
                  "all_gguf_tensors_exactly_reproduced": True, "gguf_tensor_count": len(tensors)}


# ---------------------------------------------------------------------------
# Reference forward computed from the GGUF alone (float64, torch)

def rope(x: torch.Tensor, pos: torch.Tensor, n_rot: int, base: float, mode: str) -> torch.Tensor:
    """x [T, heads, d]. mode 'norm' rotates pairs (2i, 2i+1) (llama.cpp LLAMA_ROPE_TYPE_NORM);
    'neox' rotates (i, i + n_rot/2) (LLAMA_ROPE_TYPE_NEOX). theta_i = pos * base^(-2i/n_rot)."""
    half = n_rot // 2
    inv = base ** (-torch.arange(half, dtype=torch.float64) * 2.0 / n_rot)
    ang = pos.double()[:, None] * inv[None, :]
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    xr, rest = x[..., :n_rot], x[..., n_rot:]
    if mode == "norm":
        a, b = xr[..., 0::2], xr[..., 1::2]
        ra, rb = a * cos - b * sin, a * sin + b * cos
        out = torch.stack([ra, rb], dim=-1).reshape(xr.shape)
    else:
        a, b = xr[..., :half], xr[..., half:]
        out = torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)
    return torch.cat([out, rest], dim=-1)


ROPE_MODE = {"llama": "norm", "qwen2": "neox", "qwen3": "neox", "phi3": "neox", "gpt2": None, "gemma2": "neox"}


def gemma2_swa_layers(meta: dict) -> list[bool]:
    """llama.cpp's gemma2 loader: load_swa_pattern(ml, 2) -> an explicit gemma2.attention.sliding_window_pattern
    array if present, else set_swa_pattern(n_pattern = 2 or the key's value, dense_first = false):
    block il uses the window iff il % n_pattern < n_pattern - 1 (n_pattern 2: the even blocks)."""
    n_layer = meta["gemma2.block_count"]
    pat = meta.get("gemma2.attention.sliding_window_pattern", 2)
    if isinstance(pat, list):
        return [bool(x) for x in pat]
    return [pat == 0 or il % pat < pat - 1 for il in range(n_layer)]


def gemma2_attention_scale(meta: dict) -> float:
    """llama.cpp's gemma2 loader: 1/sqrt(n_embd / n_head) for the 27B (46 blocks), else 1/sqrt(key_length)."""
    n_embd, n_head = meta["gemma2.embedding_length"], meta["gemma2.attention.head_count"]
    if meta["gemma2.block_count"] == 46:
        return 1.0 / np.sqrt(n_embd // n_head)
    return 1.0 / np.sqrt(meta.get("gemma2.attention.key_length", n_embd // n_head))


GEMMA2_VARIANTS = {
    "no_attn_softcap": "attention scores not softcapped",
    "no_final_softcap": "logits not softcapped",
    "no_sliding_window": "full causal attention on every block",
    "sliding_window_on_all_blocks": "the window on every block (as for Mistral in transformers)",
    "sliding_window_on_odd_blocks": "the window on the odd blocks instead of the even ones",
    "query_pre_attn_scalar_256": "scores scaled by 256^-0.5 (Gemma2Config's default query_pre_attn_scalar) "
                                 "instead of 16^-0.5",
}


def reference_forward(tensors: dict[str, np.ndarray], meta: dict, ids: list[int], window: int | None = None,
                      control: dict[int, np.ndarray] | None = None, variant: str | None = None):
    """Hidden states (index semantics as HF) and logits from the GGUF tensors and metadata only.
    control: {block: vector} added to that block's output at every position (repeng's ControlModule).
    window: a window on EVERY block (the HF config's, for an arch whose GGUF lacks it).
    gemma2 takes its window, pattern, softcaps and attention scale from the GGUF as llama.cpp does; variant (for
    the sensitivity numbers only) changes one of them: see GEMMA2_VARIANTS."""
    arch = meta["general.architecture"]
    W = {k: torch.from_numpy(v).double() for k, v in tensors.items()}
    n_embd = meta[f"{arch}.embedding_length"]
    n_head = meta[f"{arch}.attention.head_count"]
    n_kv = meta.get(f"{arch}.attention.head_count_kv", n_head)
    hd = meta.get(f"{arch}.attention.key_length", n_embd // n_head)
    n_rot = meta.get(f"{arch}.rope.dimension_count", hd)
    base = meta.get(f"{arch}.rope.freq_base", 10000.0)
    n_layer = meta[f"{arch}.block_count"]
    T = len(ids)
    pos = torch.arange(T)
    ids_t = torch.tensor(ids)

    def lin(x, name):
        y = x @ W[name + ".weight"].T
        return y + W[name + ".bias"] if name + ".bias" in W else y

    def norm(x, name):
        w = W[name + ".weight"]
        if arch == "gpt2":
            eps = meta[f"{arch}.attention.layer_norm_epsilon"]
            mu = x.mean(-1, keepdim=True)
            var = ((x - mu) ** 2).mean(-1, keepdim=True)
            return (x - mu) / torch.sqrt(var + eps) * w + W[name + ".bias"]
        eps = meta[f"{arch}.attention.layer_norm_rms_epsilon"]
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w

    def rms_head(x, name):
        eps = meta[f"{arch}.attention.layer_norm_rms_epsilon"]
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * W[name]

    gemma2 = arch == "gemma2"
    x = W["token_embd.weight"][ids_t]
    if arch == "gpt2":
        x = x + W["position_embd.weight"][pos]
    if gemma2:
        x = x * np.sqrt(n_embd)  # llama.cpp: ggml_scale(inp, sqrtf(n_embd)); HF: * tensor(sqrt(hidden)).to(float32)
    hidden = [x]
    raw = None
    q_i, k_i = torch.arange(T)[:, None], torch.arange(T)[None, :]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    mask = causal.clone()
    if window is not None:
        mask &= k_i > q_i - window
    assert variant is None or (gemma2 and variant in GEMMA2_VARIANTS), variant
    scale = gemma2_attention_scale(meta) if gemma2 else 1.0 / np.sqrt(hd)
    if variant == "query_pre_attn_scalar_256":
        scale = 1.0 / 16.0
    attn_cap = meta.get(f"{arch}.attn_logit_softcapping") if gemma2 and variant != "no_attn_softcap" else None
    final_cap = meta.get(f"{arch}.final_logit_softcapping") if gemma2 and variant != "no_final_softcap" else None
    if gemma2:
        n_swa = meta.get("gemma2.attention.sliding_window", 4096)
        swa = gemma2_swa_layers(meta)
        swa = {None: swa, "no_sliding_window": [False] * n_layer, "sliding_window_on_all_blocks": [True] * n_layer,
               "sliding_window_on_odd_blocks": [not w for w in swa]}.get(variant, swa)
        swa_mask = causal & (q_i - k_i < n_swa)  # llama.cpp is_masked_swa (STANDARD): masked iff p1 - p0 >= n_swa
    for il in range(n_layer):
        p = f"blk.{il}"
        if gemma2:
            mask = swa_mask if swa[il] else causal
        h = norm(x, f"{p}.attn_norm")
        if f"{p}.attn_qkv.weight" in W:
            qkv = lin(h, f"{p}.attn_qkv")
            q, k, v = torch.split(qkv, [n_head * hd, n_kv * hd, n_kv * hd], dim=-1)
        else:
            q, k, v = lin(h, f"{p}.attn_q"), lin(h, f"{p}.attn_k"), lin(h, f"{p}.attn_v")
        q, k, v = q.reshape(T, n_head, hd), k.reshape(T, n_kv, hd), v.reshape(T, n_kv, hd)
        if f"{p}.attn_q_norm.weight" in W:
            q, k = rms_head(q, f"{p}.attn_q_norm.weight"), rms_head(k, f"{p}.attn_k_norm.weight")
        if ROPE_MODE[arch] is not None:
            q, k = rope(q, pos, n_rot, base, ROPE_MODE[arch]), rope(k, pos, n_rot, base, ROPE_MODE[arch])
        group = n_head // n_kv
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) * scale
        if attn_cap is not None:
            scores = attn_cap * torch.tanh(scores / attn_cap)
        scores = scores.masked_fill(~mask[None], float("-inf"))
        att = torch.softmax(scores, dim=-1)
        o = torch.einsum("hqk,khd->qhd", att, v).reshape(T, n_head * hd)
        if gemma2:
            x = x + norm(lin(o, f"{p}.attn_output"), f"{p}.post_attention_norm")
        else:
            x = x + lin(o, f"{p}.attn_output")
        h = norm(x, f"{p}.ffn_norm")
        if gemma2:  # GELU (tanh approximation) on the gate, times up; then the post-feed-forward norm
            g, u = lin(h, f"{p}.ffn_gate"), lin(h, f"{p}.ffn_up")
            act = 0.5 * g * (1.0 + torch.tanh(np.sqrt(2.0 / np.pi) * (g + 0.044715 * g ** 3)))
            x = x + norm(lin(act * u, f"{p}.ffn_down"), f"{p}.post_ffw_norm")
        elif arch == "gpt2":
            u = lin(h, f"{p}.ffn_up")
            act = 0.5 * u * (1.0 + torch.tanh(np.sqrt(2.0 / np.pi) * (u + 0.044715 * u ** 3)))
            x = x + lin(act, f"{p}.ffn_down")
        else:
            if f"{p}.ffn_gate.weight" in W:
                g, u = lin(h, f"{p}.ffn_gate"), lin(h, f"{p}.ffn_up")
            else:  # phi3: fused, rows [gate | up]
                g, u = torch.chunk(lin(h, f"{p}.ffn_up"), 2, dim=-1)
            x = x + lin(torch.nn.functional.silu(g) * u, f"{p}.ffn_down")
        if control is not None and il in control:
            x = x + torch.from_numpy(np.asarray(control[il], dtype=np.float64))
        raw = x
        hidden.append(x)
    hidden[-1] = norm(x, "output_norm")
    head = W["output.weight"] if "output.weight" in W else W["token_embd.weight"]
    logits = hidden[-1] @ head.T
    if final_cap is not None:
        logits = final_cap * torch.tanh(logits / final_cap)
    return [h.numpy() for h in hidden], raw.numpy(), logits.numpy()


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b| (over the whole array)."""
    return float(np.abs(a.astype(np.float64) - b).max() / max(np.abs(b).max(), 1e-30))


# ---------------------------------------------------------------------------
# Per-family driver

def run_converter(llama_cpp: Path, model_dir: Path, outfile: Path, force_pre: str | None, work: Path) -> dict:
    report = work / "convert_report.json"
    spec = {"llama_cpp": str(llama_cpp), "model_dir": str(model_dir), "outfile": str(outfile),
            "force_pre_tokenizer": force_pre, "report": str(report)}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(llama_cpp / "gguf-py"), str(llama_cpp)]
                                        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("NO_LOCAL_GGUF", None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--convert-worker", json.dumps(spec)],
                          env=env, capture_output=True, text=True)
    (work / "convert.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise RuntimeError(f"converter failed for {model_dir}")
    out = json.loads(report.read_text())
    out["gguf_module"] = os.path.relpath(out["gguf_module"], llama_cpp)
    log(f"  converter ran in {time.perf_counter() - t0:.1f} s")
    out["command"] = ("PYTHONPATH=<llama.cpp>/gguf-py:<llama.cpp> python <this script> --convert-worker ... = "
                      "convert_hf_to_gguf.py <model dir> --outfile <family>.gguf --outtype f32")
    return out


def mistral_style_window(cfg) -> int | None:
    """The HF config's window when the GGUF does not carry it (mistral; phi3 has none). gemma2's GGUF has its window
    (applied on the pattern's blocks by reference_forward itself), so None there."""
    return None if cfg.model_type == "gemma2" else getattr(cfg, "sliding_window", None)


def random_prompts(model, seed: int, lo: int, hi: int, pad_id: int) -> tuple[list[tuple[str, list[int]]], list]:
    """Random ids per prompt length, redrawn until all greedy steps have a top-2 margin >= MIN_GREEDY_MARGIN
    (with and without the sliding window where the config has one)."""
    rng = np.random.default_rng(seed)
    window = mistral_style_window(model.config)
    out, draws = [], []
    for name, n in PROMPT_LENGTHS:
        for attempt in range(1, MAX_PROMPT_DRAWS + 1):
            ids = [int(i) for i in rng.integers(lo, hi, size=n)]
            margins = greedy_generate(model, ids, pad_id)[1]
            if window is not None:
                model.config.sliding_window = None
                try:
                    margins += greedy_generate(model, ids, pad_id)[1]
                finally:
                    model.config.sliding_window = window
            if min(margins) >= MIN_GREEDY_MARGIN:
                break
        else:
            raise RuntimeError(f"no {n}-token prompt with greedy margins >= {MIN_GREEDY_MARGIN}")
        out.append((name, ids))
        draws.append({"prompt": name, "draws": attempt})
    return out, draws


def facts_for(family: str, arch: str, cfg, meta: dict, tensors: dict, summary: dict, extra: dict) -> dict:
    names = sorted(tensors)
    blk0 = [n for n in names if n.startswith("blk.0.")]
    glob = [n for n in names if not n.startswith("blk.")]
    permuted = sorted(k for k, v in summary["per_kind"].items() if v["relation"].startswith("llama permute"))
    transposed = sorted(k for k, v in summary["per_kind"].items() if v["relation"].startswith("transpose"))
    f = {
        "hf_architecture": cfg.architectures[0] if cfg.architectures else None,
        "hf_model_type": cfg.model_type,
        "gguf_architecture": arch,
        "gguf_tensors_block0": blk0,
        "gguf_tensors_global": glob,
        "tied_output_head": "output.weight" not in tensors,
        "bias_tensors_block0": [n for n in blk0 if n.endswith(".bias")],
        "bias_tensors_global": [n for n in glob if n.endswith(".bias")],
        "qk_rows_permuted_by_converter": permuted,
        "tensors_transposed_by_converter": transposed,
        "tensors_changed_by_converter": permuted + transposed,
        "rope_type_llama_cpp": {"norm": "LLAMA_ROPE_TYPE_NORM (rotate adjacent pairs 2i, 2i+1 of the GGUF rows)",
                                "neox": "LLAMA_ROPE_TYPE_NEOX (rotate i with i + n_rot/2)",
                                None: "none (learned absolute position embedding)"}[ROPE_MODE[arch]],
        "rope_dimension_count": meta.get(f"{arch}.rope.dimension_count"),
        "rope_freq_base": meta.get(f"{arch}.rope.freq_base"),
        "head_dim": meta.get(f"{arch}.attention.key_length",
                             meta[f"{arch}.embedding_length"] // meta[f"{arch}.attention.head_count"]),
        "head_count": meta[f"{arch}.attention.head_count"],
        "head_count_kv": meta.get(f"{arch}.attention.head_count_kv", meta[f"{arch}.attention.head_count"]),
    }
    if arch == "gpt2":
        f["norm"] = {"kind": "LayerNorm with bias (weight and bias tensors)",
                     "eps_key": "gpt2.attention.layer_norm_epsilon", "eps": meta["gpt2.attention.layer_norm_epsilon"]}
    else:
        f["norm"] = {"kind": "RMSNorm x * rsqrt(mean(x^2) + eps) * w (no bias)",
                     "eps_key": f"{arch}.attention.layer_norm_rms_epsilon",
                     "eps": meta[f"{arch}.attention.layer_norm_rms_epsilon"]}
    lacks = []
    hd = f["head_dim"]
    if f"{arch}.attention.head_count_kv" not in meta:
        lacks.append(f"{arch}.attention.head_count_kv (absent: n_head_kv = n_head)")
    if ROPE_MODE[arch] is not None and f"{arch}.rope.dimension_count" not in meta:
        lacks.append(f"{arch}.rope.dimension_count (absent: rotate the whole head, n_rot = head_dim = {hd})")
    if ROPE_MODE[arch] is not None and f"{arch}.rope.freq_base" not in meta:
        lacks.append(f"{arch}.rope.freq_base (absent: 10000)")
    if f"{arch}.attention.key_length" not in meta:
        lacks.append(f"{arch}.attention.key_length (absent: head_dim = embedding_length / head_count = {hd})")
    if "tokenizer.ggml.add_bos_token" not in meta:
        lacks.append("tokenizer.ggml.add_bos_token (absent: llama.cpp then uses its per-tokenizer-model default)")
    window = getattr(cfg, "sliding_window", None)
    if window is not None and not any("sliding_window" in k for k in meta):
        lacks.append(f"sliding window (HF config sliding_window = {window}; no GGUF key; llama.cpp's '{arch}' "
                     "arch uses full causal attention)")
    f["gguf_lacks"] = lacks
    f["gguf_tokenizer"] = {"model": meta.get("tokenizer.ggml.model"), "pre": meta.get("tokenizer.ggml.pre")}
    f["hf_rope_parameters"] = getattr(cfg, "rope_parameters", None)
    f.update(extra)
    return f


@torch.no_grad()
def gemma2_sensitivity(model, tensors: dict, meta: dict, prompts: list, prompt_entries: list) -> dict:
    """How far the last-position logits of the longest prompt move when one Gemma-2 feature is changed
    (GEMMA2_VARIANTS), in transformers (the module attribute / config entry switched for one forward pass) and in
    the GGUF-only reference (the same change), and how closely the two agree on the changed model."""
    name, ids = prompts[-1]
    x = torch.tensor([ids])
    layers = model.model.layers
    cfg = model.config

    def hf_logits():
        return model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=False).logits[0, -1].float().numpy()

    hf_base = hf_logits()
    stored = np.frombuffer(base64.b64decode(prompt_entries[-1]["logits_last_f32le_base64"]), dtype="<f4")
    assert np.array_equal(hf_base, stored)
    flip = {"sliding_attention": "full_attention", "full_attention": "sliding_attention"}
    out = {"prompt": name, "num_tokens": len(ids),
           "note": "max |logits(changed) - logits(fixture)| over the vocabulary at the last position; hf = "
                   "transformers with the change, gguf_reference = the float64 GGUF-only forward with the same "
                   "change; reference_vs_hf_changed = max |reference - hf| of the changed model (shows both make "
                   "the same change)",
           "variants": {}}
    for var, what in GEMMA2_VARIANTS.items():
        saved_types = list(cfg.layer_types)
        saved_attn = [(l.self_attn.attn_logit_softcapping, l.self_attn.scaling, l.self_attn.sliding_window)
                      for l in layers]
        saved_final = cfg.final_logit_softcapping
        try:
            if var == "no_attn_softcap":
                for l in layers:
                    l.self_attn.attn_logit_softcapping = None
            elif var == "no_final_softcap":
                cfg.final_logit_softcapping = None
            elif var == "query_pre_attn_scalar_256":
                for l in layers:
                    l.self_attn.scaling = 256 ** -0.5
            else:
                cfg.layer_types = {"no_sliding_window": ["full_attention"] * len(layers),
                                   "sliding_window_on_all_blocks": ["sliding_attention"] * len(layers),
                                   "sliding_window_on_odd_blocks": [flip[t] for t in saved_types]}[var]
            hf_var = hf_logits()
        finally:
            cfg.layer_types = saved_types
            cfg.final_logit_softcapping = saved_final
            for l, (c, sc, w) in zip(layers, saved_attn):
                l.self_attn.attn_logit_softcapping, l.self_attn.scaling, l.self_attn.sliding_window = c, sc, w
        _, _, ref_var = reference_forward(tensors, meta, ids, variant=var)
        out["variants"][var] = {
            "change": what,
            "hf_max_abs_logit_diff": float(np.abs(hf_var - hf_base).max()),
            "gguf_reference_max_abs_logit_diff": float(np.abs(ref_var[-1] - hf_base).max()),
            "reference_vs_hf_changed_max_abs_diff": float(np.abs(ref_var[-1] - hf_var).max()),
            "argmax_changes": int(np.argmax(hf_var)) != int(np.argmax(hf_base)),
        }
    assert np.array_equal(hf_logits(), hf_base), "a switched attribute was not restored"
    return {"gemma2": out}


# ---------------------------------------------------------------------------
# Hugging Face folders (--hf-out): the saved checkpoint + tokenizer as committed fixtures

# What a user's from_pretrained folder holds (the rest of the temporary folder is not copied).
HF_FOLDER_FILES = ["config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
                   "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "chat_template.jinja"]
HF_TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                      "chat_template.jinja"]
# variant folder -> (source family, how it is saved)
HF_VARIANTS = {
    "qwen2-sharded": ("qwen2", {"max_shard_size": "200KB"}),
    "qwen3-bf16": ("qwen3", {"dtype": "bfloat16"}),
    "mistral-f16": ("mistral", {"dtype": "float16"}),
}
HF_VARIANT_PROMPTS = ["p5", "p17"]
HF_RELOAD_TOLERANCE = 1e-6  # max |reloaded - fixture| / max |fixture| of the last-position logits


def is_hf_file(name: str) -> bool:
    return name in HF_FOLDER_FILES or (name.startswith("model-") and name.endswith(".safetensors"))


def fresh_dir(path: Path) -> Path:
    import shutil

    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    v, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, i


def _enc_varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _pb_fields(buf: bytes) -> list[tuple[int, int, bytes]]:
    """(field number, wire type, raw bytes of the whole field incl. key) for one protobuf message."""
    out, i = [], 0
    while i < len(buf):
        start = i
        key, i = _varint(buf, i)
        wt = key & 7
        if wt == 0:
            _, i = _varint(buf, i)
        elif wt == 1:
            i += 8
        elif wt == 2:
            n, i = _varint(buf, i)
            i += n
        elif wt == 5:
            i += 4
        else:
            raise ValueError(f"protobuf wire type {wt}")
        out.append((key >> 3, wt, buf[start:i]))
    return out


def _pb_payload(raw: bytes) -> bytes:
    _, i = _varint(raw, 0)
    n, i = _varint(raw, i)
    return raw[i:i + n]


def _pb_len_field(num: int, payload: bytes) -> bytes:
    return _enc_varint(num << 3 | 2) + _enc_varint(len(payload)) + payload


def normalized_sp_model(data: bytes) -> bytes:
    """tokenizer.model with the trainer's file names made fixed: sentencepiece stores the training input paths and
    model_prefix (here inside the random temporary folder) in trainer_spec (ModelProto field 2; TrainerSpec
    input = 1, model_prefix = 2). They are set to "corpus.txt" and "sp"; nothing the tokenizer does depends on them
    (the GGUF converter does not read them either), and the committed file is then the same on every run."""
    out = bytearray()
    for num, wt, raw in _pb_fields(data):
        if num == 2 and wt == 2:
            spec = bytearray()
            for n2, w2, r2 in _pb_fields(_pb_payload(raw)):
                if n2 == 1 and w2 == 2:
                    r2 = _pb_len_field(1, b"corpus.txt")
                elif n2 == 2 and w2 == 2:
                    r2 = _pb_len_field(2, b"sp")
                spec += r2
            raw = _pb_len_field(2, bytes(spec))
        out += raw
    return bytes(out)


def folder_listing(path: Path) -> dict:
    return {p.name: p.stat().st_size for p in sorted(path.iterdir()) if p.is_file()}


def safetensors_summary(path: Path) -> dict:
    """Per file: tensor count and dtypes (from the headers)."""
    from safetensors import safe_open

    out = {}
    for f in sorted(path.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            dtypes = sorted({str(st.get_slice(k).get_dtype()) for k in st.keys()})
            out[f.name] = {"tensors": len(list(st.keys())), "dtypes": dtypes}
    return out


def fixture_logits(entry: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(entry["logits_last_f32le_base64"]), dtype="<f4")


@torch.no_grad()
def last_logits(model, ids: list[int]) -> np.ndarray:
    x = torch.tensor([ids], dtype=torch.long)
    return model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=False).logits[0, -1].float().numpy()


def export_hf_family(family: str, model_dir: Path, hf_out: Path, arch_json: Path) -> dict:
    """Copies the from_pretrained files of the saved checkpoint to hf_out/<family>/ and checks, by reloading the
    copy, that it is the checkpoint whose outputs arch_json (the family's fixture, as it is on disk) records."""
    import shutil

    from transformers import AutoModelForCausalLM, AutoTokenizer

    dest = fresh_dir(hf_out / family)
    copied, left = [], []
    for p in sorted(model_dir.iterdir()):
        if p.is_file() and p.name == "tokenizer.model":
            (dest / p.name).write_bytes(normalized_sp_model(p.read_bytes()))
            copied.append(p.name + " (trainer file names fixed)")
        elif p.is_file() and is_hf_file(p.name):
            shutil.copyfile(p, dest / p.name)
            copied.append(p.name)
        else:
            left.append(p.name)
    log(f"  hf: copied {copied} to {dest}" + (f" (not copied: {left})" if left else ""))
    doc = json.loads(arch_json.read_text(encoding="utf-8"))
    assert json.loads((dest / "config.json").read_text()) == doc["hf_config"], "config.json differs from the fixture's"
    tok = AutoTokenizer.from_pretrained(dest)
    sp = None
    if (dest / "tokenizer.model").is_file():
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=str(dest / "tokenizer.model"))
        orig = spm.SentencePieceProcessor(model_file=str(model_dir / "tokenizer.model"))
        assert [sp.id_to_piece(i) for i in range(sp.get_piece_size())] == \
            [orig.id_to_piece(i) for i in range(orig.get_piece_size())]
        assert [sp.get_score(i) for i in range(sp.get_piece_size())] == \
            [orig.get_score(i) for i in range(orig.get_piece_size())]
    for entry in doc["tokenizer"]["texts"]:
        assert tok(entry["text"])["input_ids"] == entry["hf_ids"], f"{family}: tokenizer differs on {entry['text']!r}"
        if sp is not None:
            assert sp.encode(entry["text"]) == entry["sentencepiece_ids"], f"{family}: tokenizer.model differs"
    check = {}
    for attn in (None, "eager"):
        kw = {} if attn is None else {"attn_implementation": attn}
        model = AutoModelForCausalLM.from_pretrained(dest, dtype=torch.float32, **kw)
        model.eval()
        assert all(p.dtype == torch.float32 for p in model.parameters())
        diffs = []
        for entry in doc["prompts"][:2]:
            ref = fixture_logits(entry)
            got = last_logits(model, entry["token_ids"])
            diffs.append((float(np.abs(got - ref).max()), rel_diff(got, ref.astype(np.float64))))
        label = attn or f"default ({model.config._attn_implementation})"
        check[label] = {"max_abs": max(d[0] for d in diffs), "max_rel": max(d[1] for d in diffs)}
        log(f"  hf reload check {family} [{label}] prompts {[e['name'] for e in doc['prompts'][:2]]}: "
            f"max abs diff {check[label]['max_abs']:.3e}, max rel diff {check[label]['max_rel']:.3e}")
    assert check["eager"]["max_rel"] <= HF_RELOAD_TOLERANCE, f"{family}: reloaded folder does not reproduce the fixture"
    return {"family": family, "dir": dest, "doc": doc, "check": check, "files": folder_listing(dest)}


@torch.no_grad()
def export_hf_variant(variant: str, src: dict, hf_out: Path, meta_common: dict) -> dict:
    """hf_out/<variant>/: the source family's checkpoint saved another way (sharded, or cast to bf16 / f16) with the
    tokenizer files, and expected.json computed by loading THAT folder in float32 (eager, CPU)."""
    import shutil

    from transformers import AutoModelForCausalLM

    family, how = HF_VARIANTS[variant]
    src_dir, doc = src["dir"], src["doc"]
    dest = fresh_dir(hf_out / variant)
    dtype = getattr(torch, how.get("dtype", "float32"))
    model = AutoModelForCausalLM.from_pretrained(src_dir, attn_implementation="eager", dtype=dtype)
    save_kw = {"max_shard_size": how["max_shard_size"]} if "max_shard_size" in how else {}
    model.save_pretrained(dest, **save_kw)
    del model
    for name in HF_TOKENIZER_FILES:
        if (src_dir / name).is_file():
            shutil.copyfile(src_dir / name, dest / name)
    stray = [p.name for p in dest.iterdir() if not is_hf_file(p.name)]
    assert not stray, f"{variant}: unexpected files {stray}"
    model = AutoModelForCausalLM.from_pretrained(dest, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    n = model.config.num_hidden_layers
    ids_of = {e["name"]: e for e in doc["prompts"]}
    special = doc["tokenizer"]["special_ids"]
    pad_id = special["pad"] if special["pad"] is not None else special["eos"]
    entries = []
    for pname in HF_VARIANT_PROMPTS:
        fx = ids_of[pname]
        ids = fx["token_ids"]
        hs, raw, logits = forward_single(model, ids)
        last = logits[-1]
        order = np.argsort(-last, kind="stable")
        new, margins = greedy_generate(model, ids, pad_id)
        manual = greedy_manual(model, ids, GREEDY_NEW_TOKENS)
        assert new == manual, f"{variant} {pname}: generate (KV cache) {new} != full recompute {manual}"
        ref = fixture_logits(fx)
        e = {
            "name": pname,
            "token_ids": ids,
            "num_tokens": len(ids),
            "logits_last_f32le_base64": f32_base64(last),
            "argmax": int(order[0]),
            "top2_margin": float(last[order[0]] - last[order[1]]),
            "greedy_new_ids": new,
            "greedy_min_top2_margin": round(min(margins), 6),
            "hidden_last_position": {str(k): f32_list(hs[k][-1]) for k in range(n + 1)},
            "last_block_raw_last_position": f32_list(raw[-1]),
            "vs_float32_fixture": {"max_abs_diff_logits_last": float(np.abs(last - ref).max()),
                                   "greedy_new_ids_equal": new == fx["greedy_new_ids"]},
        }
        entries.append(e)
        log(f"  hf {variant} {pname}: argmax {order[0]}, greedy {new} (min margin {min(margins):.4f}); vs float32 "
            f"fixture: max abs logit diff {e['vs_float32_fixture']['max_abs_diff_logits_last']:.3e}, greedy equal "
            f"{e['vs_float32_fixture']['greedy_new_ids_equal']}")
        if "dtype" not in how:
            assert e["vs_float32_fixture"]["max_abs_diff_logits_last"] == 0.0, f"{variant}: not the same checkpoint"
    cfg_json = json.loads((dest / "config.json").read_text())
    index = dest / "model.safetensors.index.json"
    out = {
        "meta": dict({k: v for k, v in meta_common.items() if k != "converter"}, **{
            "variant": variant,
            "source_family": family,
            "source_folder": family,
            "saved_as": (f"save_pretrained(max_shard_size={how['max_shard_size']!r}) of the float32 checkpoint"
                         if "max_shard_size" in how else
                         f"from_pretrained(<{family}>, dtype=torch.{how['dtype']}) then save_pretrained (weights "
                         f"rounded to {how['dtype']})"),
            "config_dtype": cfg_json.get("dtype", cfg_json.get("torch_dtype")),
            "safetensors": safetensors_summary(dest),
            "sharded": index.is_file(),
            "loaded_with": "AutoModelForCausalLM.from_pretrained(<this folder>, dtype=torch.float32, "
                           "attn_implementation='eager') on the CPU: stored bf16/f16 values upcast exactly to float32",
            "hidden_state_indexing": "as in the arch fixtures: index 0 = embedding output, index k = output of block "
                                     "k-1 (k < num_layers), index num_layers = last block after the final norm; "
                                     "last_block_raw = last block before the final norm",
            "float_encoding": "floats are the shortest decimal that round-trips the float32 value; "
                              "logits_last_f32le_base64 = base64 of little-endian float32 (all vocab_size logits)",
            "greedy": f"do_sample=False, {GREEDY_NEW_TOKENS} new tokens, eos_token_id=None (never stops), KV cache; "
                      "checked equal to argmax over full recomputation",
            "prompts_from": f"arch/{family}.json prompts {HF_VARIANT_PROMPTS}",
        }),
        "prompts": entries,
    }
    if index.is_file():
        out["meta"]["index_weight_map_files"] = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    write_json(dest / "expected.json", out)
    return {"variant": variant, "dir": dest, "files": folder_listing(dest)}


def build_family(family: str, index: int, llama_cpp: Path, out_dir: Path, work_root: Path, meta_common: dict,
                 hf_only: bool = False) -> dict:
    from gguf import GGUFReader
    from repeng import ControlModel, ControlVector
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t_start = time.perf_counter()
    seed = BASE_SEED + index
    work = work_root / family
    model_dir = work / f"tiny-{family}"  # fixed name: the converter derives general.name from it
    model_dir.mkdir(parents=True)
    log(f"== {family} (seed {seed})")

    # Tokenizer
    if family in ("gpt2", "qwen2", "qwen3"):
        tok_info = make_bpe_tokenizer(family, model_dir)
        vocab_size = tok_info["n_tokens"]
    elif family == "gemma2":
        tok_info = make_gemma_tokenizer(model_dir, work)
        vocab_size = tok_info["n_tokens"]
    else:
        tok_info = make_sp_tokenizer(family, model_dir, work)
        vocab_size = tok_info["n_tokens"] + (4 if family == "phi3" else 0)  # phi3: padded like Phi-3's 32064
    cfg = make_config(family, tok_info, vocab_size)
    cfg.architectures = [{"gpt2": "GPT2LMHeadModel", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
                          "mistral": "MistralForCausalLM", "phi3": "Phi3ForCausalLM",
                          "gemma2": "Gemma2ForCausalLM"}[family]]

    # Model: build, randomize, save, reload
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    init_weights(model, seed)
    model.eval()
    model.save_pretrained(model_dir)
    sd_mem = {k: v.clone() for k, v in model.state_dict().items()}
    del model
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    sd = model.state_dict()
    assert all(torch.equal(sd[k], sd_mem[k]) for k in sd_mem), "reloaded weights differ"
    assert model.config._attn_implementation == "eager"
    if hf_only:  # the saved folder only (the caller exports it and checks it against the existing fixture)
        return {"family": family, "arch": None, "seconds": round(time.perf_counter() - t_start, 2),
                "model_dir": model_dir}
    tok = AutoTokenizer.from_pretrained(model_dir)
    hf_config_json = json.loads((model_dir / "config.json").read_text())

    # Convert
    gguf_path = out_dir / f"{family}.gguf"
    force = {"gpt2": "gpt-2", "qwen2": "qwen2", "qwen3": "qwen2"}.get(family)
    conv = run_converter(llama_cpp, model_dir, gguf_path, force, work)
    log(f"  wrote {gguf_path} ({gguf_path.stat().st_size / 1024:.1f} KiB)")
    reader = GGUFReader(str(gguf_path))
    meta = gguf_metadata(reader)
    full_meta = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    arch = meta["general.architecture"]
    tensors = gguf_tensors(reader)
    rows, summary = tensor_checks(family, model.config, sd, tensors, reader)

    # Tokenizer facts
    g_tokens = full_meta.get("tokenizer.ggml.tokens", [])
    hf_vocab = tok.convert_ids_to_tokens(list(range(len(tok))))
    tok_section = {
        "made_with": tok_info["kind"],
        "hf_tokenizer_class": type(tok).__name__,
        "hf_len": len(tok),
        "model_vocab_size": vocab_size,
        "special_ids": tok_info["ids"],
        "gguf_tokenizer_model": meta.get("tokenizer.ggml.model"),
        "gguf_tokenizer_pre": meta.get("tokenizer.ggml.pre"),
        "gguf_token_count": len(g_tokens),
        "gguf_tokens_equal_hf_pieces_for_hf_ids": all(a == b for a, b in zip(g_tokens, hf_vocab)),
        "gguf_ids_differing_from_hf_pieces": [i for i, (a, b) in enumerate(zip(g_tokens, hf_vocab)) if a != b][:20],
        "gguf_tail_tokens": [[i, g_tokens[i]] for i in range(max(0, len(g_tokens) - 8), len(g_tokens))],
        "pre_tokenizer_detection": conv["pre_tokenizer"],
        "gguf_add_bos_token": meta.get("tokenizer.ggml.add_bos_token"),
        "hf_tokenizer_config_add_bos_token": json.loads((model_dir / "tokenizer_config.json").read_text()).get(
            "add_bos_token"),
        "texts": [],
    }
    if "tokenizer.ggml.token_type" in full_meta:
        counts: dict[str, int] = {}
        names = {1: "normal", 2: "unknown", 3: "control", 4: "user_defined", 5: "unused", 6: "byte"}
        for t in full_meta["tokenizer.ggml.token_type"]:
            counts[names.get(int(t), str(t))] = counts.get(names.get(int(t), str(t)), 0) + 1
        tok_section["gguf_token_type_counts"] = counts
    sp = None
    if (model_dir / "tokenizer.model").is_file():
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=str(model_dir / "tokenizer.model"))
    for text in TOKENIZER_TEXTS:
        entry = {"text": text, "hf_ids": tok(text)["input_ids"],
                 "hf_ids_no_special": tok(text, add_special_tokens=False)["input_ids"]}
        entry["hf_pieces"] = tok.convert_ids_to_tokens(entry["hf_ids_no_special"])
        if sp is not None:
            entry["sentencepiece_ids"] = sp.encode(text)
            entry["sentencepiece_equals_hf_no_special"] = entry["sentencepiece_ids"] == entry["hf_ids_no_special"]
        tok_section["texts"].append(entry)
    tok_section["hf_adds_bos_by_default"] = any(e["hf_ids"] != e["hf_ids_no_special"] for e in tok_section["texts"])

    # Prompts (random ids among the ordinary tokens)
    lo = tok_info["first_normal_id"]
    hi = tok_info.get("sentencepiece_pieces", tok_info["n_tokens"])
    pad_id = tok_info["ids"]["pad"] if tok_info["ids"]["pad"] is not None else tok_info["ids"]["eos"]
    prompts, prompt_draws = random_prompts(model, seed, lo, hi, pad_id)
    n = n_layers_of(family)
    assert model.config.num_hidden_layers == n

    window = mistral_style_window(model.config)
    prompt_entries = []
    ref_checks = []
    per_prompt_hs = {}
    for name, ids in prompts:
        hs, raw, logits = forward_single(model, ids)
        per_prompt_hs[name] = hs
        last = logits[-1]
        order = np.argsort(-last, kind="stable")
        new, margins = greedy_generate(model, ids, pad_id)
        manual = greedy_manual(model, ids, GREEDY_NEW_TOKENS)
        assert new == manual, f"{family} {name}: generate (KV cache) {new} != full recompute {manual}"
        assert len(new) == GREEDY_NEW_TOKENS
        prompt_entries.append({
            "name": name,
            "token_ids": ids,
            "num_tokens": len(ids),
            "hidden_last_position": {str(k): f32_list(hs[k][-1]) for k in range(n + 1)},
            "last_block_raw_last_position": f32_list(raw[-1]),
            "logits_last_f32le_base64": f32_base64(last),
            "argmax": int(order[0]),
            "top5": [[int(i), f32_list([last[i]])[0]] for i in order[:5]],
            "top2_margin": float(last[order[0]] - last[order[1]]),
            "greedy_new_ids": new,
            "greedy_step_top2_margins": [round(m, 5) for m in margins],
            "greedy_min_top2_margin": round(min(margins), 6),
            "greedy_new_text": tok.decode(new),
        })
        # Reference forward from the GGUF alone (window as the GGUF describes it: none; gemma2: its own)
        rh, rraw, rlog = reference_forward(tensors, meta, ids)
        chk = {"prompt": name,
               "max_rel_diff_hidden_last_position": max(rel_diff(rh[k][-1], hs[k][-1]) for k in range(n + 1)),
               "max_rel_diff_hidden_all_positions": max(rel_diff(rh[k], hs[k]) for k in range(n + 1)),
               "max_rel_diff_raw_last_block": rel_diff(rraw, raw),
               "max_abs_diff_logits_last": float(np.abs(rlog[-1] - last).max()),
               "argmax_equal": int(np.argmax(rlog[-1])) == int(order[0])}
        if family == "gemma2":  # greedy by full recompute through the GGUF-only forward
            seq = list(ids)
            for _ in range(GREEDY_NEW_TOKENS):
                seq.append(int(np.argmax(reference_forward(tensors, meta, seq)[2][-1])))
            chk["reference_greedy_new_ids_equal_hf"] = seq[len(ids):] == new
        if window is not None:
            wh, _, wlog = reference_forward(tensors, meta, ids, window=window)
            chk["with_hf_window"] = {"window": window,
                                     "max_rel_diff_hidden_all_positions": max(rel_diff(wh[k], hs[k]) for k in range(n + 1)),
                                     "max_abs_diff_logits_last": float(np.abs(wlog[-1] - last).max())}
        ref_checks.append(chk)
        log(f"  {name}: argmax {order[0]} margin {last[order[0]] - last[order[1]]:.3f}, greedy {new} "
            f"(min margin {min(margins):.4f}); GGUF reference rel diff {chk['max_rel_diff_hidden_all_positions']:.2e}")

    all_pos = {"prompt": ALL_POSITION_PROMPT,
               "indices": {str(k): [f32_list(row) for row in per_prompt_hs[ALL_POSITION_PROMPT][k]] for k in (1, n)}}

    # Sliding window: is it applied by transformers, and what does the model do without it?
    window_section = None
    if family == "mistral":
        model.config.sliding_window = None
        variants = []
        for (name, ids), entry in zip(prompts, prompt_entries):
            hs0, raw0, logits0 = forward_single(model, ids)
            new0, margins0 = greedy_generate(model, ids, pad_id)
            diff = max(rel_diff(hs0[k], per_prompt_hs[name][k]) for k in range(n + 1))
            variants.append({
                "prompt": name, "num_tokens": len(ids),
                "max_rel_diff_vs_window": diff,
                "hidden_last_position": {str(k): f32_list(hs0[k][-1]) for k in range(n + 1)},
                "logits_last_f32le_base64": f32_base64(logits0[-1]),
                "argmax": int(np.argmax(logits0[-1])),
                "greedy_new_ids": new0,
                "greedy_min_top2_margin": round(min(margins0), 6),
            })
        model.config.sliding_window = window
        hs_check, _, _ = forward_single(model, prompts[-1][1])
        assert all(np.array_equal(hs_check[k], per_prompt_hs[prompts[-1][0]][k]) for k in range(n + 1))
        window_section = {
            "hf_config_sliding_window": window,
            "gguf_keys_with_window": [k for k in meta if "sliding_window" in k],
            "hf_mask_rule": "masking_utils.sliding_window_overlay: key kv is visible from query q iff q - window < kv <= q "
                            f"(each query sees itself and the previous {window - 1} positions)",
            "applied_by_transformers_eager": any(v["max_rel_diff_vs_window"] > 0 for v in variants),
            "note": "the main 'prompts' entries are transformers WITH the window (as the HF config says); these "
                    "variants are the same model with config.sliding_window = None (full causal attention, which "
                    "is what the GGUF describes: it has no sliding-window key). Prompts of <= window tokens are "
                    "identical in both",
            "without_window": variants,
        }

    # Steering with repeng
    rng = np.random.default_rng(seed + 1000)
    dirs = {}
    for i in range(n):
        v = rng.standard_normal(HIDDEN)
        dirs[i] = (v / np.linalg.norm(v)).astype(np.float32)
    vector = ControlVector(model_type=model.config.model_type, directions=dirs)
    cmodel = ControlModel(model, STEER_LAYERS)
    base_ids = {e["name"]: e["greedy_new_ids"] for e in prompt_entries}
    chosen = None
    tried = []
    fallback = None
    for c in STEER_COEFFICIENTS:
        cmodel.set_control(vector, c)
        results = {name: greedy_generate(cmodel, ids, pad_id) for name, ids in prompts}
        changed = [name for name in results if results[name][0] != base_ids[name]]
        margin = min(min(m) for _, m in results.values())
        tried.append({"coefficient": c, "prompts_changed": changed, "min_top2_margin": round(margin, 6)})
        if len(changed) == len(prompts):
            fallback = fallback if fallback is not None else c
            if margin >= MIN_GREEDY_MARGIN / 2:
                chosen = c
                break
    if chosen is None:
        chosen = fallback if fallback is not None else STEER_COEFFICIENTS[-1]
    steer_cases = []
    for name, ids in prompts:
        case = {"prompt": name}
        for label, c in (("no_control", None), ("zero", 0.0), ("positive", chosen)):
            if c is None:
                cmodel.reset()
            else:
                cmodel.set_control(vector, c)
            new, margins = greedy_generate(cmodel, ids, pad_id)
            manual = greedy_manual(cmodel, ids, GREEDY_NEW_TOKENS)
            assert new == manual, f"{family} steering {label} {name}: cache vs recompute differ"
            x = torch.tensor([ids])
            with torch.no_grad():
                lg = cmodel(input_ids=x, attention_mask=torch.ones_like(x), use_cache=False).logits[0, -1].numpy()
            case[label] = {"coefficient": c, "greedy_new_ids": new, "greedy_min_top2_margin": round(min(margins), 6),
                           "logits_last_f32le_base64": f32_base64(lg), "argmax": int(np.argmax(lg))}
        assert case["zero"]["greedy_new_ids"] == case["no_control"]["greedy_new_ids"] == base_ids[name]
        assert case["zero"]["logits_last_f32le_base64"] == case["no_control"]["logits_last_f32le_base64"]
        case["positive_changes_greedy"] = case["positive"]["greedy_new_ids"] != base_ids[name]
        steer_cases.append(case)
    cmodel.reset()
    cmodel.unwrap()
    # The steering semantics checked against the GGUF-only forward: add c * v to the output of each steered block.
    control = {L: (np.float32(chosen) * dirs[L]).astype(np.float32) for L in STEER_LAYERS}
    steer_ref = []
    for (name, ids), case in zip(prompts, steer_cases):
        _, _, rl = reference_forward(tensors, meta, ids, window=window, control=control)
        hl = np.frombuffer(base64.b64decode(case["positive"]["logits_last_f32le_base64"]), dtype="<f4")
        steer_ref.append({"prompt": name, "max_abs_diff_logits_last": float(np.abs(rl[-1] - hl).max()),
                          "argmax_equal": int(np.argmax(rl[-1])) == int(np.argmax(hl))})
    steering = {
        "library": "repeng ControlModel / ControlVector (set_control(vector, coefficient), normalize=False)",
        "layers": STEER_LAYERS,
        "layers_note": "repeng layer ids are block indices: coefficient * direction[L] is added to the output of "
                       "block L at every position (prompt and generated tokens), before the next block (for the "
                       "last block: before the final norm)",
        "directions_seed": seed + 1000,
        "directions": {str(k): f32_list(v) for k, v in dirs.items()},
        "directions_note": "unit-length float32 vectors, one per block (only the steered layers are used)",
        "coefficient": chosen,
        "coefficient_rule": f"the smallest of {STEER_COEFFICIENTS} that changes the greedy ids of every prompt with "
                            f"every steered greedy step won by >= {MIN_GREEDY_MARGIN / 2}",
        "coefficients_tried": tried,
        "zero_equals_no_control": all(c["zero"]["greedy_new_ids"] == c["no_control"]["greedy_new_ids"]
                                      for c in steer_cases),
        "gguf_reference_check": {"note": "the GGUF-only float64 forward with coefficient * direction added to the "
                                         "output of each steered block (mistral: with the HF window), vs the "
                                         "controlled transformers logits of the last prompt position",
                                 "prompts": steer_ref},
        "cases": steer_cases,
    }

    # Sensitivity: how much the wrong RoPE pairing would change the logits (shows the fixture discriminates).
    sensitivity = {}
    if ROPE_MODE[arch] is not None:
        wrong = {"norm": "neox", "neox": "norm"}[ROPE_MODE[arch]]
        saved = ROPE_MODE[arch]
        ROPE_MODE[arch] = wrong
        try:
            _, _, wl = reference_forward(tensors, meta, prompts[-1][1])
        finally:
            ROPE_MODE[arch] = saved
        hf_last = np.frombuffer(base64.b64decode(prompt_entries[-1]["logits_last_f32le_base64"]), dtype="<f4")
        sensitivity[f"rope_{wrong}_instead_of_{saved}_max_abs_logit_diff_{prompts[-1][0]}"] = float(
            np.abs(wl[-1] - hf_last).max())
    if window is not None:
        sensitivity[f"ignoring_sliding_window_max_abs_logit_diff_{prompts[-1][0]}"] = \
            ref_checks[-1]["max_abs_diff_logits_last"]
    if family == "gemma2":
        sensitivity.update(gemma2_sensitivity(model, tensors, meta, prompts, prompt_entries))

    # Family-specific facts
    extra = {}
    if family == "gpt2":
        extra.update({
            "activation": {"hf_activation_function": model.config.activation_function,
                           "formula": "gelu_new = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (tanh approximation; "
                                      "llama.cpp's LLM_FFN_GELU is the same approximation)"},
            "position_embedding_tensor": "position_embd.weight",
            "position_embedding_rows": int(tensors["position_embd.weight"].shape[0]),
            "fused_tensors": {"blk.N.attn_qkv.weight": "rows [q (n_embd) | k (n_embd) | v (n_embd)], each head-major "
                                                       "(head h = rows h*head_dim ... h*head_dim+head_dim-1)",
                              "blk.N.attn_qkv.bias": "same order"},
            "transposed_note": "HF GPT-2 uses Conv1D (weight [in, out]); the converter transposes c_attn, c_proj, "
                               "c_fc so every GGUF matrix is [out, in] like nn.Linear",
            "attention_scale": "1/sqrt(head_dim) (scale_attn_weights=True, no per-layer scaling)",
            "feed_forward_length_note": "the converter writes gpt2.feed_forward_length = 4 * n_embd regardless of "
                                        "n_inner (equal here: n_inner = None -> 4 * 64 = 256)",
            "context_length_source": "gpt2.context_length comes from config n_ctx (the converter reads hparams['n_ctx'], "
                                     "so config.json must carry it; n_positions is ignored)",
            "embedding_input": "token_embd[id] + position_embd[pos] (no scaling)",
        })
    elif family in ("qwen2", "qwen3"):
        extra.update({
            "activation": "SwiGLU: ffn_down(silu(ffn_gate(x)) * ffn_up(x))",
            "fused_tensors": {},
            "position_embedding_tensor": None,
            "attention_scale": "1/sqrt(head_dim)",
        })
        if family == "qwen3":
            extra["qk_norm"] = ("blk.N.attn_q_norm.weight / attn_k_norm.weight [head_dim]: RMSNorm over each head's "
                                "head_dim (one weight shared by all heads, eps = rms eps) after the projection, "
                                "before RoPE")
            extra["head_dim_note"] = ("head_dim (32) != n_embd / n_head (16): the GGUF carries qwen3.attention.key_length "
                                      "and value_length; attn_q is [n_head*head_dim=128, 64], attn_output [64, 128]")
        else:
            extra["biases_note"] = "q, k and v projections have biases (attn_q.bias, attn_k.bias, attn_v.bias); o has none"
    elif family == "mistral":
        extra.update({
            "activation": "SwiGLU: ffn_down(silu(ffn_gate(x)) * ffn_up(x))",
            "fused_tensors": {},
            "position_embedding_tensor": None,
            "attention_scale": "1/sqrt(head_dim)",
            "rope_note": "the converter (LlamaModel, undo_permute=True) permutes attn_q/attn_k rows per head so that "
                         "adjacent-pair RoPE on the GGUF weights equals HF's rotate_half RoPE on the HF weights; "
                         "an engine must use NORM (adjacent pairs) for arch 'llama'",
            "sliding_window": {"hf_config": window, "gguf": "absent (the llama arch writes no sliding_window key)",
                               "applied_by_transformers_eager": window_section["applied_by_transformers_eager"]},
        })
    elif family == "phi3":
        hd = HIDDEN // model.config.num_attention_heads
        extra.update({
            "activation": "SwiGLU on the fused ffn_up: first half of the rows = gate, second half = up; "
                          "ffn_down(silu(gate) * up)",
            "fused_tensors": {
                "blk.N.attn_qkv.weight": f"rows [q (n_head*head_dim = {model.config.num_attention_heads * hd}) | "
                                         f"k (n_head_kv*head_dim = {model.config.num_key_value_heads * hd}) | "
                                         f"v ({model.config.num_key_value_heads * hd})], each head-major; no bias",
                "blk.N.ffn_up.weight": f"rows [gate ({model.config.intermediate_size}) | up "
                                       f"({model.config.intermediate_size})] (HF gate_up_proj, chunk(2): gate first)",
            },
            "position_embedding_tensor": None,
            "attention_scale": "1/sqrt(head_dim)",
            "partial_rotary_factor": model.config.rope_parameters.get("partial_rotary_factor"),
            "rope_scaling": "none (rope_type default, no long/short factors, no rope_factors tensors)",
            "sliding_window": {"hf_config": getattr(model.config, "sliding_window", None),
                               "gguf_phi3.attention.sliding_window": meta.get("phi3.attention.sliding_window"),
                               "note": "the converter writes 0 when the HF config has none; llama.cpp's phi3 loader "
                                       "disables SWA for phi3 even when the key is > 0"},
            "vocab_padding": (f"config vocab_size {vocab_size} > {len(tok)} tokenizer entries: the converter pads the "
                              "GGUF vocabulary with '[PADn]' tokens of type UNUSED (as for Phi-3's 32064)"),
        })
    elif family == "gemma2":
        c = model.config
        hf_swa = [t == "sliding_attention" for t in c.layer_types]
        cpp_swa = gemma2_swa_layers(meta)
        extra.update({
            "activation": "gated GELU (tanh approximation): ffn_down(gelu_tanh(ffn_gate(x)) * ffn_up(x)); gelu_tanh(x) "
                          "= 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (HF gelu_pytorch_tanh; llama.cpp "
                          "LLM_FFN_GELU, LLM_FFN_PAR)",
            "fused_tensors": {},
            "position_embedding_tensor": None,
            "norm": {"kind": "RMSNorm x * rsqrt(mean(x^2) + eps) * w_gguf (no bias); w_gguf = 1 + w_hf (the converter "
                             "adds 1 to every *norm.weight; HF Gemma2RMSNorm computes x_norm * (1 + w) in float32)",
                     "eps_key": "gemma2.attention.layer_norm_rms_epsilon",
                     "eps": meta["gemma2.attention.layer_norm_rms_epsilon"],
                     "norms_per_block": ["attn_norm (input_layernorm)", "post_attention_norm (post_attention_layernorm)",
                                         "ffn_norm (pre_feedforward_layernorm)",
                                         "post_ffw_norm (post_feedforward_layernorm)"]},
            "block": "h = x + post_attention_norm(attn(attn_norm(x))); out = h + post_ffw_norm(ffn(ffn_norm(h))) "
                     "(the steering vector is added to out)",
            "embedding_input": f"token_embd[id] * sqrt(n_embd) = * {np.sqrt(HIDDEN)} (llama.cpp ggml_scale by "
                               "sqrtf(n_embd); HF multiplies by torch.tensor(hidden_size**0.5) cast to the weight "
                               "dtype: 8.0 is exact in float32)",
            "output_head": "tied: logits = output_norm(x) @ token_embd^T (no output.weight; the converter drops "
                           "lm_head.weight, llama.cpp loads token_embd as the output)",
            "attention_scale": {
                "llama_cpp": "f_attention_scale = 1/sqrt(key_length) (n_embd_head_k) for every size but the 27B "
                             "(46 blocks: 1/sqrt(n_embd / n_head)); Q is scaled before QK^T, kq_scale 1.0",
                "hf": "query_pre_attn_scalar ** -0.5",
                "hf_query_pre_attn_scalar": c.query_pre_attn_scalar,
                "gguf_key": "none (the converter does not write query_pre_attn_scalar)",
                "value_llama_cpp": float(gemma2_attention_scale(meta)),
                "value_hf": float(c.query_pre_attn_scalar ** -0.5),
                "equal": bool(np.isclose(gemma2_attention_scale(meta), c.query_pre_attn_scalar ** -0.5)),
                "note": "equal here because query_pre_attn_scalar = head_dim = n_embd / n_head = 16 (as in Gemma-2 "
                        "2B/9B: 256 = head_dim); the sensitivity section shows the effect of 256^-0.5"},
            "softcapping": {
                "attention": {"hf_attn_logit_softcapping": c.attn_logit_softcapping,
                              "gguf_key": "gemma2.attn_logit_softcapping",
                              "gguf_value": meta.get("gemma2.attn_logit_softcapping"),
                              "formula": "scores = cap * tanh((q.k * scale) / cap), before the causal/window mask and "
                                         "the softmax (HF eager; llama.cpp build_attn_mha with attn_soft_cap)"},
                "final": {"hf_final_logit_softcapping": c.final_logit_softcapping,
                          "gguf_key": "gemma2.final_logit_softcapping",
                          "gguf_value": meta.get("gemma2.final_logit_softcapping"),
                          "formula": "logits = cap * tanh(logits / cap) (after the tied output head)"},
                "published_values": {"attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0},
                "why_smaller": "the tiny random model's scores and logits are too small to bend under 50 / 30",
            },
            "sliding_window": {
                "hf_config": c.sliding_window,
                "gguf_key": "gemma2.attention.sliding_window",
                "gguf_value": meta.get("gemma2.attention.sliding_window"),
                "gguf_pattern_key": meta.get("gemma2.attention.sliding_window_pattern",
                                             "absent (llama.cpp: load_swa_pattern(ml, 2) -> pattern 2)"),
                "hf_layer_types": list(c.layer_types),
                "hf_sliding_blocks": [i for i, w in enumerate(hf_swa) if w],
                "llama_cpp_sliding_blocks": [i for i, w in enumerate(cpp_swa) if w],
                "llama_cpp_rule": "set_swa_pattern(2, dense_first=false): block il is SWA iff il % 2 < 1 (even blocks)",
                "hf_rule": "Gemma2Config layer_types default: 'sliding_attention' iff (i + 1) % 2 (even blocks)",
                "hf_and_llama_cpp_agree": hf_swa == cpp_swa,
                "mask_rule": f"on a sliding block key kv is visible from query q iff q - {c.sliding_window} < kv <= q "
                             f"(llama.cpp LLAMA_SWA_TYPE_STANDARD: masked iff q - kv >= n_swa); full blocks: causal",
                "reference": "the fixture's prompts are transformers WITH the window on the sliding blocks (the GGUF "
                             "carries the window, so no without-window variants are stored)",
            },
            "rope": "NEOX (llama.cpp rope type for gemma2; HF rotate_half), theta 10000 (no gemma2.rope.freq_base key; "
                    "llama.cpp default 10000 = HF rope_theta), the whole head rotated (no rope.dimension_count key)",
            "tokenizer_note": "SentencePiece model 'llama' with add_space_prefix = false (no '▁' before the text), "
                              "as for Gemma; the converter writes tokenizer.ggml.add_space_prefix = false",
        })
    facts = facts_for(family, arch, model.config, meta, tensors, summary, extra)
    if family == "gemma2":
        facts["gguf_lacks"].append("gemma2.attention.query_pre_attn_scalar / any attention-scale key (absent: "
                                   "llama.cpp scales by 1/sqrt(key_length))")

    seconds = round(time.perf_counter() - t_start, 2)
    doc = {
        "meta": dict(meta_common, **{
            "family": family,
            "seed": seed,
            "gguf_file": gguf_path.name,
            "gguf_sha256": sha256(gguf_path),
            "gguf_bytes": gguf_path.stat().st_size,
            "attn_implementation": model.config._attn_implementation,
            "weight_init": INIT_NOTE,
            "hidden_state_indexing": "index 0 = embedding output (token + position embedding for gpt2; token "
                                     "embedding * sqrt(hidden) for gemma2); index k = "
                                     "output of block k-1 (k < num_layers); index num_layers = output of the last block "
                                     "after the final norm; last_block_raw = output of the last block before the final "
                                     "norm (forward hook)",
            "float_encoding": "floats are the shortest decimal that round-trips the float32 value; *_f32le_base64 = "
                              "base64 of little-endian float32 (all vocab_size logits of the last position)",
            "greedy": f"do_sample=False, {GREEDY_NEW_TOKENS} new tokens, eos_token_id=None (never stops), "
                      "repetition_penalty 1.0, KV cache; checked equal to argmax over full recomputation",
            "prompt_ids": f"random ids in [{lo}, {hi}) (numpy default_rng(seed)), no BOS added; redrawn until every "
                          f"greedy step has a top-2 logit margin >= {MIN_GREEDY_MARGIN}",
            "prompt_draws": prompt_draws,
        }),
        "hf_config": hf_config_json,
        "converter": conv,
        "gguf_metadata": meta,
        "gguf_tensors": rows,
        "gguf_tensor_summary": summary,
        "tokenizer": tok_section,
        "facts": facts,
        "gguf_reference_check": {
            "note": "hidden states and logits recomputed in float64 from the GGUF tensors and GGUF metadata only "
                    "(RoPE pairing per llama.cpp's rope type for the arch, no sliding window; gemma2: the GGUF's "
                    "window on llama.cpp's sliding blocks, its softcaps, sqrt(n_embd) embedding scale, "
                    "1/sqrt(key_length) attention scale), compared with transformers; rel diff = max|ref - hf| / "
                    "max|hf|",
            "rope_mode_used": ROPE_MODE[arch],
            "prompts": ref_checks,
        },
        "sensitivity": sensitivity,
        "prompts": prompt_entries,
        "all_positions": all_pos,
        "steering": steering,
    }
    if window_section is not None:
        doc["sliding_window"] = window_section
    write_json(out_dir / f"{family}.json", doc)
    return {"family": family, "arch": arch, "seconds": seconds, "model_dir": model_dir}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", type=Path, required=True,
                    help="the llama.cpp folder of an extracted llama-cpp-python sdist (vendor/llama.cpp)")
    ap.add_argument("--out", type=Path, default=Path("Tests/RepengEngineTests/Fixtures/arch"))
    ap.add_argument("--only", "--families", dest="only", default=",".join(FAMILIES),
                    help="comma-separated subset of " + ",".join(FAMILIES) + " (only these fixtures are rewritten)")
    ap.add_argument("--keep-work", type=Path, default=None, help="keep the checkpoints and converter logs here")
    ap.add_argument("--hf-out", type=Path, default=None,
                    help="also write each family's Hugging Face folder to HF_OUT/<family>/ and the variants "
                         + ", ".join(HF_VARIANTS) + " (for the families built)")
    ap.add_argument("--hf-only", action="store_true",
                    help="with --hf-out: only build and save the checkpoints (no conversion, nothing written to "
                         "--out) and check the folders against the existing <family>.json in --out")
    args = ap.parse_args()
    if args.hf_only and args.hf_out is None:
        print("error: --hf-only needs --hf-out", file=sys.stderr)
        return 1
    unknown = sorted(set(args.only.split(",")) - set(FAMILIES))
    if unknown:
        print(f"error: unknown families {unknown}; known: {FAMILIES}", file=sys.stderr)
        return 1

    llama_cpp = args.llama_cpp.resolve()
    if not (llama_cpp / "convert_hf_to_gguf.py").is_file() or not (llama_cpp / "gguf-py").is_dir():
        print(f"error: {llama_cpp} has no convert_hf_to_gguf.py / gguf-py", file=sys.stderr)
        return 1
    torch.set_num_threads(THREADS)
    if not args.hf_only:
        args.out.mkdir(parents=True, exist_ok=True)
    if args.hf_out is not None:
        args.hf_out.mkdir(parents=True, exist_ok=True)
    meta_common = {
        "generator": "scripts/reference/make_arch_fixtures.py",
        "versions": versions(),
        "converter": llama_cpp_info(llama_cpp),
        "dtype": "float32",
        "device": "cpu",
        "torch_threads": THREADS,
    }
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="arch-fixtures-") as tmp:
        work_root = args.keep_work.resolve() if args.keep_work else Path(tmp)
        work_root.mkdir(parents=True, exist_ok=True)
        done = []
        for i, fam in enumerate(FAMILIES):
            if fam in args.only.split(","):
                d = build_family(fam, i, llama_cpp, args.out, work_root, meta_common, hf_only=args.hf_only)
                done.append(d)
                if args.hf_out is not None:
                    src = export_hf_family(fam, d["model_dir"], args.hf_out, args.out / f"{fam}.json")
                    d["hf_check"] = src["check"]
                    for variant, (vfam, _) in HF_VARIANTS.items():
                        if vfam == fam:
                            export_hf_variant(variant, src, args.hf_out, meta_common)
    if not args.hf_only:
        total = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
        log(f"done in {time.perf_counter() - t0:.1f} s: " + ", ".join(f"{d['family']}->{d['arch']}" for d in done)
            + f"; {args.out} holds {total / 1024:.0f} KiB")
    if args.hf_out is not None:
        for d in done:
            log(f"hf reload check {d['family']}: " + ", ".join(f"{k} max abs {v['max_abs']:.3e} rel {v['max_rel']:.3e}"
                                                               for k, v in d["hf_check"].items()))
        total = sum(p.stat().st_size for p in args.hf_out.rglob("*") if p.is_file())
        log(f"{args.hf_out} holds {total / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
