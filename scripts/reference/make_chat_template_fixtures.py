# Generates the chat-template golden fixtures (Tests/RepengEngineTests/Fixtures/chat/) with transformers' own renderer.
#
# Run by hand with the reference environment:
#     python scripts/reference/make_chat_template_fixtures.py [llama.cpp templates dir]
#
# Every case is rendered by `transformers.utils.chat_template_utils.render_jinja_template`, the function
# `apply_chat_template(..., tokenize=False)` uses (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
# loopcontrols, transformers' tojson / raise_exception / strftime_now / dict / namespace). `datetime.now()` is
# pinned to FIXED_NOW so templates that print today's date are reproducible; the Swift tests pass the same
# wall-clock time (in the local time zone) as `now:`.
import datetime as _dt
import json
import shutil
import sys
from pathlib import Path
from unittest import mock

import gguf
import jinja2
import transformers
from transformers.utils import chat_template_utils as ctu

ROOT = Path(__file__).resolve().parent.parent.parent
OUT = ROOT / "Tests" / "RepengEngineTests" / "Fixtures" / "chat"
LLAMA_CPP_TEMPLATES = Path(
    sys.argv[1] if len(sys.argv) > 1 else "/tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp/models/templates"
)
MODELS = ROOT / ".cache" / "models"
FIXED_NOW = _dt.datetime(2025, 3, 4, 14, 5, 7)

# Published templates copied verbatim from llama.cpp's models/templates, with the BOS/EOS strings of each
# model's tokenizer_config.json (Qwen and SmolLM3 have no BOS token; "" stands in, the templates never read it).
UPSTREAM = [
    ("meta-llama-Llama-3.1-8B-Instruct", "<|begin_of_text|>", "<|eot_id|>"),
    ("meta-llama-Llama-3.2-3B-Instruct", "<|begin_of_text|>", "<|eot_id|>"),
    ("mistralai-Mistral-Nemo-Instruct-2407", "<s>", "</s>"),
    ("Qwen-Qwen2.5-7B-Instruct", "", "<|im_end|>"),
    ("microsoft-Phi-3.5-mini-instruct", "<s>", "<|endoftext|>"),
    ("google-gemma-2-2b-it", "<bos>", "<eos>"),
    ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    ("deepseek-ai-DeepSeek-V3.1", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    ("HuggingFaceTB-SmolLM3-3B", "", "<|im_end|>"),
    ("Qwen-Qwen3-0.6B", "", "<|im_end|>"),
    ("ibm-granite-granite-3.3-2B-Instruct", "<|end_of_text|>", "<|end_of_text|>"),
]

# Templates read from the bundled GGUF files' `tokenizer.chat_template`; BOS/EOS are the GGUF's own token strings.
GGUF_TEMPLATES = [
    ("smollm2", MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"),
    ("gemma3", MODELS / "gemma-3-270m-q4_k_m.gguf"),
]

SYSTEM = {"role": "system", "content": "You are a helpful assistant. /no_think"}
USER1 = {"role": "user", "content": "  Hello! What's 2+2? Answer «briefly» 😀\n"}
ASSISTANT1 = {"role": "assistant", "content": "<think>\nSimple arithmetic.\n</think>\n\nIt is 4."}
USER2 = {"role": "user", "content": "And 3*3? Use <b>tags</b> & \"quotes\"."}

CONVERSATIONS = {
    "user": [USER1],
    "system_user": [SYSTEM, USER1],
    "multi_turn": [SYSTEM, USER1, ASSISTANT1, USER2],
    "user_assistant": [USER1, ASSISTANT1],
    "user_user": [USER1, USER2],  # breaks role alternation: Gemma and Mistral raise
}

# Small templates, one feature family each, rendered by the same environment.
SYNTHETIC = {
    "syn-loop": (
        "{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}"
        "/{{ loop.first }}/{{ loop.last }}/{{ loop.length }}/{{ loop.depth }}"
        "/{{ loop.previtem.role if loop.previtem is defined else '-' }}"
        "/{{ loop.nextitem.role if loop.nextitem is defined else '-' }}/{{ loop.cycle('a', 'b') }};{% endfor %}\n"
        "{% for i in range(10) if i is odd %}{{ i }}:{{ loop.index }}/{{ loop.length }} {% endfor %}\n"
        "{% for x in [] %}never{% else %}empty{% endfor %}\n"
        "{% for k, v in [('a', 1), ('b', 2)] %}{{ k }}={{ v }} {% endfor %}\n"
        "{% for i in range(1, 20, 3) %}{% if i > 12 %}{% break %}{% endif %}{% if i == 4 %}{% continue %}{% endif %}{{ i }},{% endfor %}\n"
        "{% for row in [[1, 2], [3]] %}{% for c in row %}{{ loop.index }}{{ c }}{% endfor %}|{% endfor %}\n"
        "{% for ch in 'héllo' %}[{{ ch }}]{% endfor %} {% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}\n"
        "{% set total = 0 %}{% for i in range(3) %}{% set total = total + i %}{{ total }}{% endfor %} after={{ total }}"
    ),
    "syn-namespace": (
        "{% set ns = namespace(count=0, names=[], flag=false) %}"
        "{% for m in messages %}{% set ns.count = ns.count + 1 %}{% set ns.names = ns.names + [m.role] %}"
        "{% if m.role == 'user' %}{% set ns.flag = true %}{% endif %}{% endfor %}"
        "{{ ns.count }} {{ ns.names }} {{ ns.flag }} {{ ns.missing is defined }}\n"
        "{% if true %}{% set leaked = 'if-set leaks' %}{% endif %}{{ leaked }}\n"
        "{% for i in [1] %}{% set inner = 'x' %}{% endfor %}[{{ inner }}]\n"
        "{% set a, b = 1, 'two' %}{{ a }} {{ b }}\n"
        "{% set block %}  block {{ a + 1 }}  {% endset %}[{{ block }}]\n"
        "{% set ns2 = namespace({'k': 'from dict'}, extra=3) %}{{ ns2.k }} {{ ns2.extra }}\n"
        "{% set d = dict(z=1, a=2) %}{{ d }} {{ dict([('p', 1), ('q', 2)]) }} {{ ns }}"
    ),
    "syn-macro": (
        "{% macro greet(name, punct='!', upper=false) -%}\n"
        "    {{ (name | upper) if upper else name }}{{ punct }}\n"
        "{%- endmacro %}\n"
        "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n }}*{{ fact(n - 1) }}{% endif %}{% endmacro %}\n"
        "{% macro args() %}{{ varargs }} {{ kwargs }}{% endmacro %}\n"
        "{% macro render_message(m) %}<{{ m.role }}>{{ m.content | trim }}</{{ m.role }}>{% endmacro %}\n"
        "{{ greet('world') }} {{ greet('bob', '?') }} {{ greet('amy', upper=true) }} {{ greet(name='z', punct='.') }}\n"
        "{{ fact(5) }} {{ args(1, 2, key='v') }} {{ greet }}\n"
        "{% for m in messages %}{{ render_message(m) }}{% endfor %}"
    ),
    "syn-slicing": (
        "{% set s = 'héllo wörld😀' %}{% set l = [0, 1, 2, 3, 4, 5] %}"
        "{{ s[1:] }}|{{ s[::-1] }}|{{ s[-3:] }}|{{ s[:100] }}|{{ s[5:2] }}|{{ s[::2] }}|{{ s[-100:3] }}|{{ s[3] }}|{{ s[-1] }}\n"
        "{{ l[1:] }}|{{ l[::-1] }}|{{ l[-2:] }}|{{ l[:-2] }}|{{ l[1:5:2] }}|{{ l[5:0:-2] }}|{{ l[10:] }}|{{ l[-1] }}|{{ l[::-3] }}\n"
        "{{ messages[1:] | length }} {{ messages[-1].role }} {{ messages[0]['content'][:6] }}"
    ),
    "syn-filters": (
        "{{ '  pad  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ 'Hello World' | upper }}|{{ 'Hello' | lower }}"
        "|{{ 'hELLO wORLD' | capitalize }}|{{ 'hello big-world (x)' | title }}\n"
        "{{ [1, 2, 3] | join(', ') }}|{{ ['a', 'b'] | join }}|{{ 'a-b-c' | replace('-', '+') }}|{{ 'aaa' | replace('a', 'b', 2) }}\n"
        "{{ missing | default('dflt') }}|{{ '' | default('empty', true) }}|{{ none | d('x') }}|{{ 0 | default(5) }}\n"
        "{{ [3, 1, 2] | first }}|{{ [3, 1, 2] | last }}|{{ 'abc' | first }}|{{ 'abc' | list }}|{{ {'k': 1} | list }}\n"
        "{{ 42 | string }}|{{ '12' | int + 1 }}|{{ '3.7' | int }}|{{ 'x' | int(-1) }}|{{ '2.5' | float }}|{{ 7 | float }}\n"
        "{{ -3 | abs }}|{{ 2.567 | round(2) }}|{{ 2.5 | round }}|{{ 3.5 | round }}|{{ 2.1 | round(0, 'ceil') }}|{{ 2.9 | round(method='floor') }}\n"
        "{{ [1, 2, 3, 4] | select('even') | list }}|{{ [1, 2, 3, 4] | reject('even') | list }}|{{ [0, 1, '', 'a'] | select | list }}\n"
        "{{ messages | selectattr('role', 'equalto', 'user') | list | length }}|{{ messages | rejectattr('role', 'eq', 'user') | map(attribute='role') | list }}\n"
        "{{ [3, 1, 2, 1] | unique | list }}|{{ [3, 1, 2] | sort }}|{{ ['b', 'A', 'c'] | sort }}|{{ [3, 1, 2] | sort(reverse=true) }}\n"
        "{{ [{'n': 2}, {'n': 1}] | sort(attribute='n') | map(attribute='n') | join }}|{{ [1, 2] | reverse | list }}|{{ 'abc' | reverse }}\n"
        "{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(width='> ', first=true) }}|{{ 'one two  three' | wordcount }}\n"
        "{{ {'b': 1, 'a': 2} | dictsort }}|{{ {'b': 1, 'a': 2} | items | list }}|{{ [1, 5, 3] | max }}|{{ [4, 2] | min }}|{{ [1, 2, 3] | sum }}\n"
        "{{ 'abc' | length }}|{{ [1, 2] | count }}|{{ {'a': 1} | length }}|{{ '<a href=\"x\">&\\'' | e }}|{{ '<b>' | safe }}\n"
        "{{ ['x', 'y'] | map('upper') | list }}|{{ [1, 2] | map('string') | join('-') }}|{{ '%s and %s' | format('a', 'b') }}"
    ),
    "syn-tests": (
        "{{ x is defined }} {{ x is undefined }} {{ none is none }} {{ 'a' is string }} {{ 1 is number }} {{ 1.5 is number }}"
        " {{ 1 is integer }} {{ 1.0 is integer }} {{ 1.0 is float }} {{ true is boolean }} {{ 1 is boolean }}\n"
        "{{ {} is mapping }} {{ [] is mapping }} {{ [] is iterable }} {{ 'a' is iterable }} {{ 3 is iterable }}"
        " {{ [] is sequence }} {{ 'x' is sequence }} {{ {} is sequence }} {{ 3 is sequence }}\n"
        "{{ true is true }} {{ 1 is true }} {{ false is false }} {{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }}"
        " {{ 9 is divisibleby(4) }} {{ 'a' is equalto 'a' }} {{ 2 is eq 3 }} {{ none is sameas none }} {{ 1 is ne 2 }}\n"
        "{{ 3 is gt 2 }} {{ 2 is lt 1 }} {{ 'b' is in 'abc' }} {{ 'lower' is lower }} {{ 'UP' is upper }}"
        " {{ messages is not none }} {{ messages[0] is mapping }} {{ messages[0].content is string }}\n"
        "{{ 'upper' is filter }} {{ 'nofilter' is filter }} {{ 'odd' is test }} {{ range is callable }} {{ 1 is callable }}"
        " {{ 'x' is not string }} {{ not 'x' is string }} {{ x is not defined and true }}"
    ),
    "syn-whitespace": (
        "<a>\n"
        "    {% if true %}\n"
        "    kept line\n"
        "    {% endif %}\n"
        "  {%- if true -%}  stripped  {%- endif %}\n"
        "    {%+ if true %}plus keeps indent{% endif +%}\n"
        "next\n"
        "{# comment #}\n"
        "  {#- dash comment -#}  \n"
        "{{ 'v' }}   {{- 'w' -}}   {{ 'x' }}\n"
        "   {{ 'variable keeps indent' }}\n"
        "{% raw %}{{ not rendered }} {% if %}{% endraw %}\n"
        "\t{% for i in [1, 2] %}\n"
        "\titem {{ i }}\n"
        "\t{% endfor %}\n"
        "{%- for i in [1, 2] -%}\n"
        "   [{{ i }}]\n"
        "{%- endfor %}\n"
        "end\n"
        "\n"
    ),
    "syn-tojson": (
        "{{ {'text': 'é😀 \"q\" \\\\ \\n\\t\\u0001\\u2028/', 'n': [1, 2.5, none, true, false], 'empty': {}, 'el': []} | tojson }}\n"
        "{{ {'a': {'b': [1, {'c': 'd'}]}, 'e': []} | tojson(indent=2) }}\n"
        "{{ {'z': 1, 'a': 2} | tojson(sort_keys=true) }} {{ [1, 'x'] | tojson(separators=(',', ':')) }}"
        " {{ 'é' | tojson(ensure_ascii=true) }} {{ '😀' | tojson(ensure_ascii=true) }}\n"
        "{{ messages | tojson }}\n"
        "{{ {1: 'int key', true: 'bool', none: 'none'} | tojson }} {{ 1.0 | tojson }} {{ 1e100 | tojson }} {{ 'a' | tojson(indent=4) }}\n"
        "{{ tools | tojson }} {{ payload | tojson(indent='\\t') }}"
    ),
    "syn-dict": (
        "{% set d = {'zeta': 1, 'alpha': 2, 'mid': {'x': [1, 2]}} %}"
        "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}\n"
        "{{ d.keys() | list }} {{ d.values() | list }} {{ d | items | list }} {{ d.get('alpha') }} {{ d.get('nope', 'dflt') }} {{ d.get('nope') }}\n"
        "{{ d['mid']['x'][1] }} {{ d.mid.x[0] }} {{ d.missing is defined }} {{ 'zeta' in d }} {{ 'q' not in d }} {{ d }}\n"
        "{% for k, v in payload | items %}{{ k }}:{{ v }} {% endfor %}{{ payload.nested.list }} {{ payload.nested.list[1:] }}"
    ),
    "syn-strings": (
        "{{ 'tab\\there\\nnew \\'single\\' \"double\" back\\\\slash \\x41 \\u00e9 \\U0001F600 \\d' }}\n"
        "{{ \"it's\" }} {{ ['it\\'s', \"q\\\"\", 'plain', 'new\\nline'] }} {{ 'con' 'cat' }}\n"
        "{{ '  strip me  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  l'.lstrip() }}|{{ 'r  '.rstrip() }}|{{ '\\n\\nx'.lstrip('\\n') }}\n"
        "{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'k=v=w'.split('=')[-1] }}\n"
        "{{ 'hello'.startswith('he') }} {{ 'hello'.endswith('lo') }} {{ 'hello'.startswith(('x', 'h')) }} {{ 'Hi'.upper() }} {{ 'Hi'.lower() }}\n"
        "{{ 'a-b'.replace('-', '_') }} {{ 'hello world'.title() }} {{ 'hello'.capitalize() }} {{ 'abcabc'.count('b') }} {{ 'abc'.find('c') }}\n"
        "{{ '-'.join(['x', 'y']) }} {{ '123'.isdigit() }} {{ 'abc'.isalpha() }} {{ 'line1\\nline2'.splitlines() }} {{ 'prefix-x'.removeprefix('prefix-') }}"
    ),
    "syn-arith": (
        "{{ 7 + 2 }} {{ 7 - 10 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 6 / 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }}\n"
        "{{ 2 ** 10 }} {{ 2 ** 3 ** 2 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1 + 2.0 }} {{ true + 1 }} {{ 10 - 0.1 }}\n"
        "{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 1.5e-5 }} {{ 0.0001 }} {{ 123456789.125 }} {{ 1/3 }} {{ -0.0 }} {{ 2.0 * 3 }}\n"
        "{{ 'ab' * 3 }} {{ 3 * 'x' }} {{ [1, 2] * 2 }} {{ [1] + [2, 3] }} {{ 'a' ~ 1 ~ none ~ true }} {{ -(3) }} {{ +4 }} {{ 1_000 + 0x10 + 0o7 + 0b11 }}\n"
        "{{ 1 < 2 < 3 }} {{ 3 > 2 > 5 }} {{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 != 2 }} {{ (1, 2) == [1, 2] }} {{ 2 >= 2 }}\n"
        "{{ true and 'x' }} {{ false or 'y' }} {{ 0 or '' }} {{ not 0 }} {{ [] or 'empty' }} {{ 'a' if 1 > 2 else 'b' }} {{ 'c' if true }}[{{ 'd' if false }}]\n"
        "{{ 1 in [1, 2] }} {{ 3 not in [1, 2] }} {{ 'ell' in 'hello' }} {{ messages | length * 2 }} {{ (1, 'a') }} {{ (1,) }} {{ () }}"
    ),
    "syn-undefined": (
        "[{{ nothing }}] {{ nothing is defined }} {{ nothing | default('d') }} [{{ nothing ~ 'a' }}] {{ 'x' in nothing }}"
        " {{ nothing | length }} {{ nothing | list }} [{{ nothing | trim }}] {{ not nothing }} {{ nothing == nothing }}"
        " {{ nothing == none }} {{ nothing is iterable }}\n"
        "{% for x in nothing %}never{% endfor %}{% if nothing %}never{% else %}falsy{% endif %}"
        " {{ messages[0].nokey is defined }} [{{ messages[0].nokey }}] {{ messages[99] is defined }} {{ 'str'.nokey is defined }}"
        " {{ tools is none }} {{ documents is defined }} [{{ [1].append }}]"
    ),
    "syn-markup": (
        "{{ '<b>' | safe + '<i>' }} {{ '<i>' + '<b>' | safe }} {{ ('<b>' | safe) ~ '<i>' }} {{ '<x>' | e | e }}"
        " {{ ('a' | safe) * 2 }} {{ ['<a>' | safe, '<b>'] | join('&') }}"
    ),
    "syn-python": (
        "{{ '<{}|{}>'.format(1, 'a') }} {{ '{0}-{0}-{1}'.format('x', 2.5) }} {{ '{:>5}|{:<4}|{:^7}|'.format('a', 'b', 'c') }}"
        " {{ '{:.2f} {:05d} {:+d} {:x}'.format(3.14159, 42, 7, 255) }} {{ '{a} {b.role}'.format(a=1, b=messages[0]) }}\n"
        "{{ '%s-%d-%5.1f-%r' % ('a', 3, 2.25, 'b') }} {{ '%-5s|%05d|%x' % ('ab', 42, 255) }} {{ 'n=%s' % 7 }}\n"
        "{{ range(5) }} {{ range(1, 10, 3) }} {{ range(5)[::-1] }} {{ range(10)[2:8:2] }} {{ range(5) | length }}"
        " {{ 3 in range(5) }} {{ range(5)[-1] }} {{ range(3) | list }}\n"
        "{{ messages[0].keys() }} {{ messages[0].values() | list }} {{ messages[0].items() }} {{ messages[0].items() | length }}\n"
        "{% if messages | selectattr('role', 'eq', 'nobody') %}a generator is always true{% endif %}"
        " {{ (messages | selectattr('role', 'eq', 'nobody') | list) | length }} {{ 5 | items is defined }}"
        " {{ undefined_name is callable }} {{ range is callable }}"
    ),
    "syn-strftime": "{{ strftime_now('%Y-%m-%d %H:%M:%S|%a %A|%b %B|%d %j %I %p %y|%%') }}",
    "syn-raise": (
        "{% for m in messages %}{% if m.role == 'system' %}"
        "{{ raise_exception('System messages are not supported (got ' ~ messages | length ~ ' messages)') }}"
        "{% endif %}{{ m.role }};{% endfor %}"
    ),
}

SYNTHETIC_EXTRA = {
    "syn-tojson": {"payload": {"zulu": "last?", "alpha": [1, {"deep": "é"}], "num": 1.25}},
    "syn-dict": {"payload": {"zulu": 1, "alpha": 2, "nested": {"list": ["a", "b", "c"]}}},
}


class FixedDateTime(_dt.datetime):
    """`datetime` whose `now()` is FIXED_NOW (strftime_now reads the module-level `datetime`)."""

    @classmethod
    def now(cls, tz=None):
        return FIXED_NOW


def render(source, messages, add_generation_prompt, bos, eos, extra):
    """Renders with transformers; returns (output, None) or (None, raise_exception message)."""
    with mock.patch.object(ctu, "datetime", FixedDateTime):
        try:
            rendered, _ = ctu.render_jinja_template(
                conversations=[messages],
                chat_template=source,
                add_generation_prompt=add_generation_prompt,
                bos_token=bos,
                eos_token=eos,
                **extra,
            )
            return rendered[0], None
        except jinja2.exceptions.TemplateError as e:
            # raise_exception raises the base class itself; subclasses are real template bugs.
            if type(e) is not jinja2.exceptions.TemplateError:
                raise
            return None, str(e)


def encode_value(v):
    """JSON for a template value; objects become {"$object": [[key, value], ...]} to keep their key order."""
    if isinstance(v, dict):
        return {"$object": [[k, encode_value(x)] for k, x in v.items()]}
    if isinstance(v, (list, tuple)):
        return [encode_value(x) for x in v]
    return v


def gguf_string(path, key):
    reader = gguf.GGUFReader(str(path))
    field = reader.fields.get(key)
    if field is None:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def gguf_token(path, key):
    reader = gguf.GGUFReader(str(path))
    field = reader.fields[key]
    token_id = int(field.parts[field.data[0]][0])
    tokens = reader.fields["tokenizer.ggml.tokens"]
    return bytes(tokens.parts[tokens.data[token_id]]).decode("utf-8")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    templates = []  # (name, source, bos, eos, origin)
    for name, bos, eos in UPSTREAM:
        src_path = LLAMA_CPP_TEMPLATES / f"{name}.jinja"
        shutil.copyfile(src_path, OUT / f"{name}.jinja")
        # Bytes, not read_text(): universal-newline decoding would hide a \r\n from the renderer.
        source = src_path.read_bytes().decode("utf-8")
        templates.append((name, source, bos, eos, f"llama.cpp models/templates/{name}.jinja"))
    for name, path in GGUF_TEMPLATES:
        text = gguf_string(path, "tokenizer.chat_template")
        target = OUT / f"{name}.jinja"
        if text is not None:
            target.write_text(text, encoding="utf-8", newline="")
            origin = f"GGUF {path.name} tokenizer.chat_template"
        elif target.exists():
            # gemma-3-270m-q4_k_m.gguf carries no tokenizer.chat_template; the committed file is Gemma 3's
            # published template (google/gemma-3-*-it tokenizer_config.json), kept as is.
            text = target.read_bytes().decode("utf-8")
            origin = f"Gemma 3 tokenizer_config.json chat_template ({path.name} has no tokenizer.chat_template)"
            print(f"note: {path.name} has no tokenizer.chat_template; using committed {target.name}")
        else:
            raise SystemExit(f"{path} has no tokenizer.chat_template and {target} is missing")
        bos = gguf_token(path, "tokenizer.ggml.bos_token_id")
        eos = gguf_token(path, "tokenizer.ggml.eos_token_id")
        templates.append((name, text, bos, eos, origin))

    cases = []
    for name, source, bos, eos, _origin in templates:
        for conv_name, messages in CONVERSATIONS.items():
            for agp in (False, True):
                out, raised = render(source, messages, agp, bos, eos, {})
                cases.append(
                    {"template": name, "conversation": conv_name, "bos_token": bos, "eos_token": eos,
                     "messages": messages, "add_generation_prompt": agp, "extra": {},
                     "expected": out, "raised": raised}
                )
    # One case passes `date_string` through `extra`, as callers do for Llama 3.1.
    llama31 = next(t for t in templates if t[0] == "meta-llama-Llama-3.1-8B-Instruct")
    extra = {"date_string": "01 Jan 2025"}
    out, raised = render(llama31[1], CONVERSATIONS["system_user"], True, llama31[2], llama31[3], extra)
    cases.append({"template": llama31[0], "conversation": "system_user", "bos_token": llama31[2],
                  "eos_token": llama31[3], "messages": CONVERSATIONS["system_user"], "add_generation_prompt": True,
                  "extra": {k: encode_value(v) for k, v in extra.items()}, "expected": out, "raised": raised})

    synthetic = []
    for name, source in SYNTHETIC.items():
        synthetic.append({"name": name, "source": source})
        for conv_name in ("multi_turn", "user"):
            messages = CONVERSATIONS[conv_name]
            extra = SYNTHETIC_EXTRA.get(name, {})
            out, raised = render(source, messages, True, "<s>", "</s>", extra)
            cases.append({"template": name, "conversation": conv_name, "bos_token": "<s>", "eos_token": "</s>",
                          "messages": messages, "add_generation_prompt": True,
                          "extra": {k: encode_value(v) for k, v in extra.items()},
                          "expected": out, "raised": raised})

    doc = {
        "generator": "scripts/make_chat_template_fixtures.py",
        "transformers": transformers.__version__,
        "jinja2": jinja2.__version__,
        "fixed_now": FIXED_NOW.isoformat(),
        "templates": [{"name": n, "origin": o, "bos_token": b, "eos_token": e} for n, _s, b, e, o in templates],
        "synthetic": synthetic,
        "cases": cases,
    }
    with open(OUT / "cases.json", "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")
    raised = sum(1 for c in cases if c["raised"] is not None)
    print(f"wrote {len(cases)} cases ({raised} expect raise_exception) for {len(templates)} templates"
          f" + {len(synthetic)} synthetic to {OUT}")


if __name__ == "__main__":
    main()
