# Builds the Hugging Face tokenizer.json golden fixtures (Tests/RepengEngineTests/Fixtures/tokenizers/) with tokenizers + transformers.
"""Golden ids and decodes for `makeTokenizer(huggingFaceFolder:)`.

Each fixture is a folder holding what a Hugging Face model folder holds for its tokenizer
(`tokenizer.json`, `tokenizer_config.json`, sometimes `chat_template.jinja`) and `expected.json`:
every corpus string encoded with add_special_tokens=True and False and the ids decoded with
skip_special_tokens=False and True, plus hand-made id sequences decoded both ways.

The reference is the `tokenizers` library (`Tokenizer.from_file`), checked against transformers'
`AutoTokenizer.from_pretrained(folder)`, plus the add_bos_token / add_eos_token flags of
tokenizer_config.json where the post-processor lacks BOS / EOS (see `make_expected`).

Fixtures:
  - tokenizers trained here on a small corpus, one per pipeline kind (vocab <= 2,000);
  - the tiny model tokenizers under Tests/RepengEngineTests/Fixtures/hf/<family>/ when present
    (copied here as hf_<family>);
  - SmolLM2-135M-Instruct's tokenizer as transformers converts it from the GGUF, committed when its
    tokenizer.json is at most 4 MB (folder smollm2).

Run by hand (never from tests), from any directory:

    /work/venv-ref/bin/python scripts/reference/make_hf_tokenizer_fixtures.py [models dir]

Versions used for the committed fixtures: transformers 5.24.0, tokenizers 0.23.3.
"""

import json
import os
import random
import shutil
import sys
import tempfile

import tokenizers
import transformers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".cache", "models")
OUT = os.path.join(ROOT, "Tests", "RepengEngineTests", "Fixtures", "tokenizers")
HF_TINY = [
    os.path.join(ROOT, "Tests", "RepengEngineTests", "Fixtures", "hf"),
    os.path.join("/work", "main", "Tests", "RepengEngineTests", "Fixtures", "hf"),
]

with open(os.path.join(ROOT, "scripts", "reference", "tokenizer_corpus.json"), encoding="utf-8") as f:
    BASE_CORPUS = json.load(f)

# Strings the shared corpus lacks: normalization-sensitive text, more spacing and special cases.
EXTRA_CORPUS = [
    "ﬁ ﬂ ﬃ ﬄ ﬅ oﬃce",
    "Å Å Å Ångström",
    "ｈｅｌｌｏ ＷＯＲＬＤ １２３ ！？",
    "Σίσυφος ΟΔΥΣΣΕΥΣ σοφός ΣΑΣ",
    "İ ǅ ǈ ß ẞ ŉ",
    "e\u0301 e\u0301\u0301 a\u0308\u0304 \u0301start",
    "\u1100\u1161\u11a8 \uac01",
    "ⅸ ⑩ ㊿ ⁹ ₂ ¼",
    "tab\there  and\t\tthere",
    "   ",
    " a",
    "a ",
    "  a  b  ",
    "\u3000ideographic\u3000space",
    "x\u0000y null and \u0007 bell \u001f unit",
    "don't DON'T o'clock 'tis rock'n'roll",
    "1 12 123 1234 12345 123456",
    "3.14 and 2,718 and 1_000",
    "hello-world hello_world hello.world",
    "¡¿«»‹›„“”‚‘’–—•·",
    "a" * 1500,
    "ab" * 400 + " " + "xyz" * 300,
    "".join(chr(c) for c in range(0x4E00, 0x4E00 + 300)),
    "🙂" * 50,
]

# Training text: the corpus, a few paragraphs, and many repetitions of a handful of words.
TRAINING_TEXT = BASE_CORPUS + [
    "The tokenizer splits text into pieces, then merges characters into tokens by rank. "
    "Hello world, hello again; the world is large and the tokens are small.",
    "In the beginning there were bytes, and the bytes were merged into words. "
    "Numbers like 12, 345 and 6789 appear in text, as do dates such as 2024-01-01.",
    "def tokenize(text):\n    return [piece for piece in text.split()]\n\nclass Model:\n    pass\n",
    "Le café est très bon. Der Straßenbahn fährt schnell. El niño come una manzana.",
    "東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다.",
    "I'm sure you're right, we'll see what they've done and what he'd say.",
]
TRAINING_TEXT += ["the quick brown fox jumps over the lazy dog"] * 20 + ["hello world"] * 20

GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# A pattern no hand-written scanner knows (GPT-4o / o200k style): exercises the generic regex path.
O200K_SPLIT = "|".join(
    [
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"\p{N}{1,3}",
        r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
        r"\s*[\r\n]+",
        r"\s+(?!\S)",
        r"\s+",
    ]
)

BYTE_ALPHABET = pre_tokenizers.ByteLevel.alphabet()


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


BYTE_CHAR = bytes_to_unicode()


def byte_spelling(text):
    return "".join(BYTE_CHAR[b] for b in text.encode("utf-8"))


def train_bpe(tok, vocab_size, special, alphabet=None, limit_alphabet=None):
    kwargs = dict(vocab_size=vocab_size, special_tokens=special, show_progress=False)
    if alphabet is not None:
        kwargs["initial_alphabet"] = alphabet
    if limit_alphabet is not None:
        kwargs["limit_alphabet"] = limit_alphabet
    tok.train_from_iterator(TRAINING_TEXT, trainers.BpeTrainer(**kwargs))
    return tok


def with_json(tok, edit):
    """Applies `edit` to the tokenizer's JSON and reloads it."""
    j = json.loads(tok.to_str())
    edit(j)
    return Tokenizer.from_str(json.dumps(j, ensure_ascii=False))


def add_byte_tokens(j):
    """Puts <0x00> ... <0xFF> into the vocabulary right after the leading special tokens (as Llama does)."""
    vocab = j["model"]["vocab"]
    ordered = sorted(vocab.items(), key=lambda kv: kv[1])
    specials = [t for t, _ in ordered if t.startswith("<") and t.endswith(">") and len(t) > 2][:3]
    rest = [t for t, _ in ordered if t not in specials]
    new = {}
    for t in specials:
        new[t] = len(new)
    for b in range(256):
        new["<0x%02X>" % b] = len(new)
    for t in rest:
        if t not in new:
            new[t] = len(new)
    j["model"]["vocab"] = new
    remap = {old: new[t] for t, old in vocab.items()}
    for a in j["added_tokens"]:
        a["id"] = remap[a["id"]]
    pp = j.get("post_processor")
    if pp and pp.get("type") == "TemplateProcessing":
        for name, st in pp["special_tokens"].items():
            st["ids"] = [new[name]]


def config(**kw):
    c = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False, "model_max_length": 4096}
    c.update(kw)
    return c


CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


# ---------------------------------------------------------------------------------------------
# The trained tokenizers: name -> function returning (Tokenizer, tokenizer_config dict, extra files).


def gpt2_bytelevel():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    train_bpe(tok, 900, ["<|endoftext|>"], alphabet=BYTE_ALPHABET)
    # A special token that strips spaces on its left (RoBERTa's <mask>), a plain added token matched
    # on the raw text, one that is normalized, and one that only matches whole words.
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True, normalized=False)])
    tok.add_tokens([AddedToken("[PLAIN]", normalized=False), AddedToken("hello world", normalized=True)])
    tok.add_tokens([AddedToken("fox", single_word=True, normalized=False)])
    return tok, config(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"), {}


def roberta_style():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    train_bpe(tok, 700, ["<s>", "<pad>", "</s>", "<unk>"], alphabet=BYTE_ALPHABET)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, special=True, normalized=False)])
    tok.add_special_tokens([AddedToken("<sep2>", lstrip=False, rstrip=True, special=True, normalized=False)])
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    return tok, config(bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>"), {}


LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def llama3_style():
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(LLAMA3_SPLIT), "isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tok.decoder = decoders.ByteLevel()
    train_bpe(tok, 1000, [], alphabet=BYTE_ALPHABET)

    def edit(j):
        j["model"]["ignore_merges"] = True
        vocab = j["model"]["vocab"]
        # Whole-word tokens no merge path reaches: with ignore_merges they are used as they are.
        for word in [" antidisestablishmentarianism", " pneumonoultramicroscopicsilicovolcanoconiosis", " Straße", "Supercalifragilisticexpialidocious"]:
            s = byte_spelling(word)
            if s not in vocab:
                vocab[s] = len(vocab)

    tok = with_json(tok, edit)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in LLAMA3_SPECIALS])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B:1", special_tokens=[("<|begin_of_text|>", bos)]),
        ]
    )
    return tok, config(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>"), {}


def qwen2_style():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(QWEN2_SPLIT), "isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    train_bpe(tok, 1000, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], alphabet=BYTE_ALPHABET)
    # chat_template.jinja beside tokenizer_config.json wins over the config's template.
    cfg = config(eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None, chat_template="{{ 'config template' }}")
    return tok, cfg, {"chat_template.jinja": CHAT_TEMPLATE}


def smollm_style():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    train_bpe(tok, 800, ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<file_sep>"], alphabet=BYTE_ALPHABET)
    # List-form templates: the one named "default" is the chat template.
    cfg = config(
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        chat_template=[{"name": "tool_use", "template": "{{ 'tools' }}"}, {"name": "default", "template": CHAT_TEMPLATE}],
    )
    return tok, cfg, {}


def llama2_metaspace():
    """Llama-2 / early Mistral: Prepend + Replace normalizers, no pre-tokenizer, byte fallback."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    train_bpe(tok, 900, ["<unk>", "<s>", "</s>"], limit_alphabet=120)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)])
    tok = with_json(tok, add_byte_tokens)
    # A normalized plain added token: matched after the normalizer, in its normalized spelling.
    tok.add_tokens([AddedToken("my token", normalized=True)])
    return tok, config(bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True, add_eos_token=False), {}


def mistral_metaspace():
    """Newer Llama/Mistral exports: Metaspace(prepend_scheme first, split false), BOS from tokenizer_config."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    train_bpe(tok, 900, ["<unk>", "<s>", "</s>"], limit_alphabet=150)
    tok = with_json(tok, add_byte_tokens)
    tok.add_special_tokens([AddedToken("[INST]", special=True, normalized=False), AddedToken("[/INST]", special=True, normalized=False)])
    tok.add_tokens([AddedToken("<tool>", normalized=False, rstrip=True)])
    # No post-processor in tokenizer.json: transformers builds "<s> $A" from add_bos_token.
    tok.post_processor = None
    return tok, config(bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True, add_eos_token=True), {}


def metaspace_always():
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    train_bpe(tok, 700, ["<unk>", "<s>", "</s>"], limit_alphabet=150)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> $B </s>", special_tokens=[("<s>", 1), ("</s>", 2)]
    )
    return tok, config(bos_token="<s>", eos_token="</s>", unk_token="<unk>"), {}


def metaspace_first_strip():
    """Strip normalizer before Metaspace(first): text that starts with spaces no longer starts the input."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Strip(left=True, right=True)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(replacement="▁", prepend_scheme="first", split=True)])
    train_bpe(tok, 600, ["<unk>", "<s>", "</s>"], limit_alphabet=150)
    tok = with_json(tok, add_byte_tokens)
    tok.add_special_tokens([AddedToken("<sep>", special=True, normalized=False)])
    return tok, config(bos_token="<s>", eos_token="</s>", unk_token="<unk>"), {}


def metaspace_never():
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    train_bpe(tok, 600, ["<unk>", "<s>", "</s>"], limit_alphabet=150)
    return tok, config(bos_token="<s>", eos_token="</s>", unk_token="<unk>"), {}


def gemma_style():
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    train_bpe(tok, 900, ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"], limit_alphabet=150)

    def edit(j):
        add_byte_tokens(j)
        # Gemma keeps runs of spaces as tokens of "▁".
        vocab = j["model"]["vocab"]
        for k in range(2, 6):
            s = "▁" * k
            if s not in vocab:
                vocab[s] = len(vocab)
        merges = j["model"]["merges"]
        for k in range(2, 6):
            merges.append(["▁" * (k - 1), "▁"])

    tok = with_json(tok, edit)
    bos = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos)])
    return tok, config(bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", pad_token="<pad>"), {}


def nfkc_lower_whitespace():
    tok = Tokenizer(models.BPE(unk_token="[UNK]", fuse_unk=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    train_bpe(tok, 700, ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"], limit_alphabet=100)
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")), ("[CLS]", tok.token_to_id("[CLS]")))
    # Normalized plain tokens: one matched anywhere, one only as a whole word.
    tok.add_tokens([AddedToken("Ok", single_word=True, normalized=True), AddedToken("WORLD", normalized=True)])
    # transformers' additions: added_tokens_decoder overrides [MASK]'s flags, and a named special
    # token that is a plain vocabulary entry becomes a special added token.
    cfg = config(
        unk_token="[UNK]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        additional_special_tokens=["the"],
        added_tokens_decoder={
            str(tok.token_to_id("[MASK]")): {"content": "[MASK]", "lstrip": True, "rstrip": False, "normalized": False, "single_word": False, "special": True}
        },
    )
    return tok, cfg, {}


def digits_punctuation():
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Strip(left=True, right=True)])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Digits(individual_digits=False), pre_tokenizers.Punctuation()]
    )
    tok.decoder = decoders.Fuse()
    train_bpe(tok, 700, ["<unk>", "<eos>"], limit_alphabet=120)
    tok.post_processor = processors.TemplateProcessing(single="$A <eos>", pair="$A <eos> $B <eos>", special_tokens=[("<eos>", 1)])
    return tok, config(eos_token="<eos>", unk_token="<unk>"), {}


def o200k_regex():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(O200K_SPLIT), "isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tok.decoder = decoders.ByteLevel()
    train_bpe(tok, 800, ["<|endoftext|>"], alphabet=BYTE_ALPHABET)
    return tok, config(eos_token="<|endoftext|>"), {}


def split_variants():
    """One byte-level model under several Split behaviours, string and regex patterns."""
    base = Tokenizer(models.BPE())
    base.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    base.decoder = decoders.ByteLevel()
    train_bpe(base, 500, ["<|endoftext|>"], alphabet=BYTE_ALPHABET)
    variants = {
        "split_removed": pre_tokenizers.Split(Regex(r"\s+"), "removed"),
        "split_prev_string": pre_tokenizers.Split(" ", "merged_with_previous"),
        "split_next_invert": pre_tokenizers.Split(Regex(r"\p{L}+"), "merged_with_next", invert=True),
        "split_contiguous": pre_tokenizers.Split(Regex(r"[0-9]|\p{P}"), "contiguous"),
        "split_isolated_invert": pre_tokenizers.Split(Regex(r"\d+|\s"), "isolated", invert=True),
        "split_chars": pre_tokenizers.Sequence([pre_tokenizers.CharDelimiterSplit("o"), pre_tokenizers.BertPreTokenizer()]),
    }
    out = {}
    for name, pre in variants.items():
        tok = Tokenizer.from_str(base.to_str())
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        if name == "split_chars":
            tok.normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.StripAccents(), normalizers.Lowercase()])
        out[name] = (tok, config(eos_token="<|endoftext|>"), {})
    # The byte alphabet applied by a normalizer instead of a pre-tokenizer.
    tok = Tokenizer.from_str(base.to_str())
    tok.normalizer = normalizers.ByteLevel()
    tok.pre_tokenizer = None
    out["bytelevel_normalizer"] = (tok, config(eos_token="<|endoftext|>"), {})
    return out


def no_decoder():
    """Split on a string, no decoder (decode joins tokens with spaces), no post-processor, a regex Replace."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Replace(Regex(r" {2,}"), " ")
    tok.pre_tokenizer = pre_tokenizers.Split(" ", "merged_with_next")
    train_bpe(tok, 500, ["<unk>", "<eos>"], limit_alphabet=100)
    return tok, {"tokenizer_class": "PreTrainedTokenizerFast"}, {}


TRAINED = {
    "gpt2_bytelevel": gpt2_bytelevel,
    "roberta_style": roberta_style,
    "llama3_style": llama3_style,
    "qwen2_style": qwen2_style,
    "smollm_style": smollm_style,
    "llama2_metaspace": llama2_metaspace,
    "mistral_metaspace": mistral_metaspace,
    "metaspace_always": metaspace_always,
    "metaspace_first_strip": metaspace_first_strip,
    "metaspace_never": metaspace_never,
    "gemma_style": gemma_style,
    "nfkc_lower_whitespace": nfkc_lower_whitespace,
    "digits_punctuation": digits_punctuation,
    "o200k_regex": o200k_regex,
    "no_decoder": no_decoder,
}

# ---------------------------------------------------------------------------------------------


def special_strings(tok):
    """Strings placing the tokenizer's own added tokens next to words, spaces and each other."""
    added = [t.content for t in tok.get_added_tokens_decoder().values()]
    out = []
    for t in sorted(added)[:8]:
        out += [t, f"a{t}b", f" {t} ", f"x  {t}  y", f"{t}{t}", f"\n{t}\n", f"word{t} word", f"{t[:-1]}", f"The fox {t}fox fox{t}"]
    if len(added) >= 2:
        a, b = sorted(added)[:2]
        out.append(f"{a} hello {b}{a}  {b}")
    return out


def decode_sequences(tok, vocab_size):
    rng = random.Random(4321)
    vocab = tok.get_vocab()
    seqs = [[], list(range(min(vocab_size, 40))), list(range(max(0, vocab_size - 30), vocab_size))]
    byte_ids = [vocab[k] for k in ("<0x%02X>" % b for b in range(256)) if k in vocab]
    if byte_ids:
        grin = [vocab["<0x%02X>" % b] for b in "\U0001F600".encode() if "<0x%02X>" % b in vocab]
        seqs += [grin, grin[:2], grin[:3] + [vocab_size - 1], [byte_ids[0xE2], byte_ids[0x41]] if len(byte_ids) == 256 else []]
        for _ in range(6):
            seqs.append([rng.choice(byte_ids) for _ in range(rng.randrange(1, 8))])
    for _ in range(12):
        seqs.append([rng.randrange(0, vocab_size) for _ in range(rng.randrange(1, 30))])
    added = sorted(tok.get_added_tokens_decoder().keys())
    if added:
        seqs.append([added[0], 5, added[-1], 7, added[0]])
        seqs.append([10, added[-1]] * 3)
    return [s for s in seqs if s is not None]


def template_parts(pp):
    """(prefix, suffix) ids a post-processor JSON puts around a single sequence."""
    if pp is None or pp["type"] == "ByteLevel":
        return [], []
    if pp["type"] == "TemplateProcessing":
        pre, suf, seen = [], [], False
        for item in pp["single"]:
            if "Sequence" in item:
                seen = True
            else:
                (suf if seen else pre).extend(pp["special_tokens"][item["SpecialToken"]["id"]]["ids"])
        return pre, suf
    if pp["type"] in ("RobertaProcessing", "BertProcessing"):
        return [pp["cls"][1]], [pp["sep"][1]]
    if pp["type"] == "Sequence":
        pre, suf = [], []
        for p in pp["processors"]:
            a, b = template_parts(p)
            pre, suf = a + pre, suf + b
        return pre, suf
    raise SystemExit(f"unknown post-processor {pp['type']}")


def make_expected(folder, name, note):
    """Writes expected.json for a folder.

    Plain ids (add_special_tokens=False) and decodes are transformers', asserted equal to the bare
    tokenizers library's unless tokenizer_config.json adds or changes added tokens (named special
    tokens, `added_tokens_decoder`). With add_special_tokens=True the same: add_bos_token /
    add_eos_token of tokenizer_config.json add BOS / EOS only when tokenizer.json has no
    post-processor, as in transformers 5.24 (4.x also honoured them beside a post-processor).
    """
    hf = AutoTokenizer.from_pretrained(folder)
    raw = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    raw_json = json.load(open(os.path.join(folder, "tokenizer.json"), encoding="utf-8"))
    cfg_path = os.path.join(folder, "tokenizer_config.json")
    cfg = json.load(open(cfg_path, encoding="utf-8")) if os.path.exists(cfg_path) else {}
    prefix, suffix = template_parts(raw_json.get("post_processor"))

    def token_id(key):
        v = cfg.get(key)
        if isinstance(v, dict):
            v = v.get("content")
        return hf.convert_tokens_to_ids(v) if isinstance(v, str) else None

    flags_change = False
    # transformers 5.24 honours add_bos_token / add_eos_token only when tokenizer.json has no
    # post-processor; so does the engine.
    has_post_processor = raw_json.get("post_processor") is not None
    if not has_post_processor and cfg.get("add_bos_token") and token_id("bos_token") is not None and token_id("bos_token") not in prefix:
        prefix, flags_change = [token_id("bos_token")] + prefix, True
    if not has_post_processor and cfg.get("add_eos_token") and token_id("eos_token") is not None and token_id("eos_token") not in suffix:
        suffix, flags_change = suffix + [token_id("eos_token")], True
    added_contents = {t.content for t in raw.get_added_tokens_decoder().values()}
    named = [cfg.get(k) for k in ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")]
    named += cfg.get("additional_special_tokens") or []
    named = [n.get("content") if isinstance(n, dict) else n for n in named]
    # transformers changes the added tokens: then its ids are the reference.
    config_adds_tokens = "added_tokens_decoder" in cfg or any(isinstance(n, str) and n not in added_contents for n in named)
    corpus = BASE_CORPUS + EXTRA_CORPUS + special_strings(raw)
    seen = set()
    corpus = [t for t in corpus if not (t in seen or seen.add(t))]
    cases = []
    transformers_differs = 0
    for text in corpus:
        hf_ids = hf(text, add_special_tokens=True)["input_ids"]
        plain = hf(text, add_special_tokens=False)["input_ids"]
        raw_ids = raw.encode(text, add_special_tokens=True).ids
        raw_plain = raw.encode(text, add_special_tokens=False).ids
        if (raw_plain != plain or raw_ids != hf_ids) and not config_adds_tokens:
            raise SystemExit(f"{name}: tokenizers and transformers disagree on ids for {text!r}")
        ids = prefix + plain + suffix if flags_change else hf_ids
        if ids != hf_ids:
            transformers_differs += 1
        d = hf.decode(ids, skip_special_tokens=False)
        ds = hf.decode(ids, skip_special_tokens=True)
        if not config_adds_tokens and (d != raw.decode(ids, skip_special_tokens=False) or ds != raw.decode(ids, skip_special_tokens=True)):
            raise SystemExit(f"{name}: tokenizers and transformers decode {ids} differently")
        cases.append({"text": text, "ids": ids, "ids_plain": plain, "decoded": d, "decoded_skip": ds})
    size = max(max(raw.get_vocab().values()) + 1, len(hf))
    decodes = []
    for ids in decode_sequences(raw, size):
        decodes.append(
            {
                "ids": ids,
                "decoded": hf.decode(ids, skip_special_tokens=False),
                "decoded_skip": hf.decode(ids, skip_special_tokens=True),
            }
        )
        assert config_adds_tokens or decodes[-1]["decoded"] == raw.decode(ids, skip_special_tokens=False)
    chat = hf.chat_template
    if isinstance(chat, dict):
        chat = chat.get("default")
    expected = {
        "name": name,
        "note": note,
        "generator": "scripts/reference/make_hf_tokenizer_fixtures.py",
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "vocab_size": len(hf),
        "bos_id": hf.bos_token_id,
        "eos_id": hf.eos_token_id,
        "chat_template": chat,
        "strings_where_transformers_ignores_config_flags": transformers_differs,
        "cases": cases,
        "decodes": decodes,
    }
    with open(os.path.join(folder, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"{name}: {len(cases)} strings, {len(decodes)} decodes, vocab {len(hf)}, add_bos/eos flags change ids of {transformers_differs}")


def write_folder(name, tok, cfg, extra):
    folder = os.path.join(OUT, name)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    tok.save(os.path.join(folder, "tokenizer.json"), pretty=False)
    cfg = {k: v for k, v in cfg.items() if v is not None}
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=1)
        f.write("\n")
    for fname, text in extra.items():
        with open(os.path.join(folder, fname), "w", encoding="utf-8") as f:
            f.write(text)
    return folder


def copy_tiny_models():
    for base in HF_TINY:
        if not os.path.isdir(base):
            continue
        seen = set()
        for family in sorted(os.listdir(base)):
            src = os.path.join(base, family)
            if not os.path.exists(os.path.join(src, "tokenizer.json")):
                continue
            # Variants of a family (other dtypes, sharded weights) share its tokenizer: one copy.
            with open(os.path.join(src, "tokenizer.json"), "rb") as f:
                content = f.read()
            if content in seen:
                continue
            seen.add(content)
            dst = os.path.join(OUT, "hf_" + family)
            if os.path.isdir(dst):
                shutil.rmtree(dst)
            os.makedirs(dst)
            for fname in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
                if os.path.exists(os.path.join(src, fname)):
                    shutil.copy(os.path.join(src, fname), dst)
            make_expected(dst, "hf_" + family, f"tiny {family} model tokenizer from {src}")
        return


def smollm2():
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not os.path.exists(os.path.join(MODELS, gguf)):
        print("smollm2: model missing, skipped")
        return
    folder = os.path.join(OUT, "smollm2")
    tmp = tempfile.mkdtemp()
    AutoTokenizer.from_pretrained(MODELS, gguf_file=gguf).save_pretrained(tmp)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    for fname in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if os.path.exists(os.path.join(tmp, fname)):
            shutil.copy(os.path.join(tmp, fname), folder)
    shutil.rmtree(tmp)
    make_expected(folder, "smollm2", f"AutoTokenizer.from_pretrained(models, gguf_file={gguf!r}).save_pretrained(...)")
    size = os.path.getsize(os.path.join(folder, "tokenizer.json"))
    print(f"smollm2: tokenizer.json is {size} bytes ({'committed' if size <= 4_000_000 else 'too large to commit'})")


def main():
    os.makedirs(OUT, exist_ok=True)
    only = set(sys.argv[2:])
    built = {}
    for name, fn in TRAINED.items():
        built[name] = fn()
    built.update(split_variants())
    for name, (tok, cfg, extra) in built.items():
        if only and name not in only:
            continue
        folder = write_folder(name, tok, cfg, extra)
        make_expected(folder, name, "trained by the fixture script")
    if not only or "hf" in only:
        copy_tiny_models()
    if not only or "smollm2" in only:
        smollm2()


if __name__ == "__main__":
    main()
