#!/usr/bin/env python3
# Builds the tokenizer golden fixtures from Hugging Face transformers' GGUF tokenizer conversion.
"""Golden token ids and decodes for the bundled GGUF models, made with Hugging Face tooling.

For each model, the tokenizer is the one transformers builds from the GGUF metadata:

    AutoTokenizer.from_pretrained(<models dir>, gguf_file=<file>)

and every string of scripts/reference/tokenizer_corpus.json is encoded with
add_special_tokens=True and False; the ids with special tokens are decoded with
skip_special_tokens=False and True. A few hand-made id sequences (byte tokens that form
invalid UTF-8, special tokens mid-text, ...) are decoded too.

The Gemma-3 vocabulary is also converted along transformers' two other SentencePiece routes
(generic LlamaTokenizer, and Phi-3), to cover those without more models. A last file holds the
pieces that each supported pre-tokenizer regex cuts every corpus string into (tokenizers'
`Split(Regex(...), behavior="isolated")`), which tests the hand-written scanners alone.

Run by hand (never from tests):

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install transformers tokenizers gguf \
        sentencepiece protobuf numpy torch
    /tmp/venv/bin/python scripts/reference/make_tokenizer_fixtures.py [models dir]

Outputs Tests/RepengEngineTests/Fixtures/tokenizer/
{smollm2,gemma3,gemma3_as_llama,gemma3_as_phi3,pretokenizers}.json.

Where transformers' conversion departs from the model's published tokenizer, the published one
wins (see PUBLISHED_PRE_TOKENIZERS: SmolLM2 splits digits one by one); the corpus strings on which
the stock conversion gives other ids are listed in the fixture under "stock_conversion_differs".
"""

import json
import os
import random
import sys

import tokenizers
import transformers
from tokenizers import Regex, pre_tokenizers
from transformers import AutoTokenizer
from transformers.integrations.gguf import gguf_tokenizer_mapping

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".cache", "models")
OUT = os.path.join(ROOT, "Tests", "RepengEngineTests", "Fixtures", "tokenizer")

with open(os.path.join(ROOT, "scripts", "reference", "tokenizer_corpus.json"), encoding="utf-8") as f:
    CORPUS = json.load(f)

# The split regexes, as transformers' integrations/gguf/gguf_tokenizer_mapping.py and the GPT-2
# ByteLevel pre-tokenizer of `tokenizers` define them.
GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def split_pretokenizer(regex):
    return pre_tokenizers.Split(Regex(regex), behavior="isolated")


# The raw pieces (before the byte-to-unicode mapping) for each `tokenizer.ggml.pre` name.
# `smollm` is SmolLM2's published pre-tokenizer, Sequence[Digits(individual), ByteLevel(GPT-2 regex)],
# which is also what llama.cpp runs for that name.
PRETOKENIZERS = {
    "gpt-2": split_pretokenizer(GPT2_SPLIT),
    "llama-bpe": split_pretokenizer(LLAMA3_SPLIT),
    "qwen2": split_pretokenizer(QWEN2_SPLIT),
    "smollm": pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), split_pretokenizer(GPT2_SPLIT)]
    ),
}


def pieces(pre, text):
    return [piece for piece, _ in pre.pre_tokenize_str(text)]


# Where the GGUF names a pre-tokenizer that transformers' conversion does not reproduce, the
# model's published tokenizer.json is the reference. SmolLM2 (pre `smollm`, like StarCoder) splits
# digits one by one before the GPT-2 ByteLevel regex; llama.cpp does the same for this name, but
# transformers gives the file the plain GPT-2 ByteLevel pre-tokenizer.
PUBLISHED_PRE_TOKENIZERS = {
    "smollm": pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    ),
}


def model_fixture(file, pre_name, extra_decodes):
    tok = AutoTokenizer.from_pretrained(MODELS, gguf_file=file)
    stock = {}
    if pre_name in PUBLISHED_PRE_TOKENIZERS:
        stock = {text: tok(text, add_special_tokens=False)["input_ids"] for text in CORPUS}
        tok.backend_tokenizer.pre_tokenizer = PUBLISHED_PRE_TOKENIZERS[pre_name]
    backend = json.loads(tok.backend_tokenizer.to_str())
    cases = []
    for text in CORPUS:
        with_special = tok(text, add_special_tokens=True)["input_ids"]
        plain = tok(text, add_special_tokens=False)["input_ids"]
        cases.append(
            {
                "text": text,
                "ids": with_special,
                "ids_plain": plain,
                "decoded": tok.decode(with_special, skip_special_tokens=False),
                "decoded_skip": tok.decode(with_special, skip_special_tokens=True),
            }
        )
    decodes = [
        {
            "ids": ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip": tok.decode(ids, skip_special_tokens=True),
        }
        for ids in extra_decodes(tok)
    ]
    return {
        "model": file,
        "generator": "scripts/reference/make_tokenizer_fixtures.py",
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "pre_tokenizer": backend["pre_tokenizer"],
        # Corpus strings whose ids from transformers' stock GGUF conversion differ from `ids_plain`.
        "stock_conversion_differs": [c["text"] for c in cases if c["text"] in stock and stock[c["text"]] != c["ids_plain"]],
        "cases": cases,
        "decodes": decodes,
    }


def smollm_decodes(tok):
    rng = random.Random(1234)
    vocab = tok.get_vocab()
    # Single-byte tokens of the GPT-2 byte alphabet: the four bytes of U+1F600 and pieces of it.
    # (SmolLM2 has no token for 21 bytes that never occur in UTF-8 text, e.g. 0xC0 and 0xF5-0xFF.)
    alphabet = transformers.convert_slow_tokenizer.bytes_to_unicode()
    byte_id = {b: vocab[alphabet[b]] for b in range(256) if alphabet[b] in vocab}
    grin = [byte_id[b] for b in "\U0001F600".encode()]
    seqs = [
        grin,
        grin[:2],
        grin[:3] + [vocab["a"]],
        [byte_id[0xE2], byte_id[0x82], byte_id[0x41], byte_id[0xC2], byte_id[0xAF], byte_id[0xED], byte_id[0xA0], byte_id[0x80]],
        [byte_id[0xF4], byte_id[0x90], byte_id[0x80], byte_id[0x80], byte_id[0xE0], byte_id[0x80]],
        [1, vocab["a"], 2, 0, byte_id[0xF0], 2, byte_id[0x9F]],
        list(range(0, 40)),
    ]
    for _ in range(12):
        seqs.append([rng.randrange(0, len(vocab)) for _ in range(rng.randrange(1, 30))])
    high = [i for b, i in byte_id.items() if b >= 0x80]
    for _ in range(8):
        seqs.append([rng.choice(high) for _ in range(rng.randrange(1, 8))])
    return seqs


def gemma_decodes(tok):
    rng = random.Random(5678)
    vocab = tok.get_vocab()
    byte_id = {b: vocab["<0x%02X>" % b] for b in range(256)}
    grin = [byte_id[b] for b in "\U0001F600".encode()]
    a = vocab["a"]
    seqs = [
        grin,
        grin[:2],
        grin[:3] + [a],
        grin + grin,
        [byte_id[0x41], byte_id[0xE2], a, byte_id[0x42]],
        [byte_id[0xE2], byte_id[0x82], byte_id[0xAC], 2, byte_id[0xE2], 105, byte_id[0x82], byte_id[0xAC]],
        [2, 105, a, 106, 1, 0, 3, 4],
        [138, 139, 107, 108, 255968, 168],
        list(range(0, 40)),
        list(range(230, 260)),
    ]
    for _ in range(12):
        seqs.append([rng.randrange(0, len(vocab)) for _ in range(rng.randrange(1, 30))])
    for _ in range(8):
        seqs.append([byte_id[rng.randrange(0x00, 0x100)] for _ in range(rng.randrange(1, 8))])
    return seqs


def dump(name, obj):
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def main():
    os.makedirs(OUT, exist_ok=True)

    smol = model_fixture("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm", smollm_decodes)
    dump("smollm2.json", smol)

    gemma = model_fixture("gemma-3-270m-q4_k_m.gguf", "default", gemma_decodes)
    dump("gemma3.json", gemma)

    # The same vocabulary through transformers' other SentencePiece routes, which every non-Gemma
    # "llama" vocabulary takes: generic (LlamaTokenizer: score-ranked merges, Metaspace prefix,
    # Strip decoder) and Phi-3 (a "▁" prepended to every run of text by a normalizer). Covers those
    # code paths without more models.
    builders = gguf_tokenizer_mapping.GGUF_SENTENCEPIECE_BUILDERS
    saved = builders["gemma3"]
    for name, builder in [("llama", None), ("phi3", builders["phi3"])]:
        if builder is None:
            builders.pop("gemma3")
        else:
            builders["gemma3"] = builder
        try:
            fixture = model_fixture("gemma-3-270m-q4_k_m.gguf", "default", gemma_decodes)
        finally:
            builders["gemma3"] = saved
        fixture["note"] = f"gemma-3 vocabulary converted as a {name} SentencePiece GGUF"
        dump(f"gemma3_as_{name}.json", fixture)

    pre = {
        "generator": "scripts/reference/make_tokenizer_fixtures.py",
        "tokenizers": tokenizers.__version__,
        "pieces": {name: [pieces(p, text) for text in CORPUS] for name, p in PRETOKENIZERS.items()},
        "corpus": CORPUS,
    }
    dump("pretokenizers.json", pre)


if __name__ == "__main__":
    main()
