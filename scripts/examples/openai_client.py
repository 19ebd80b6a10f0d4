#!/usr/bin/env python3
"""repengd's HTTP API from the stock `openai` Python client (pip install openai).

    python3 scripts/examples/openai_client.py --base-url "$(repengctl http-url | sed 's|/?token=.*|/v1|')" \
        --api-key "$(repengctl http-url | sed 's|.*token=||')" --vector happy --coeff 1.5 "What are you doing this weekend?"

Prints one JSON object per line: the models, a chat completion with the vector (plain, then
streamed), a raw-text completion (plain, then streamed), and the error a
missing vector gives. Steering goes in `extra_body`, the openai client's way of sending
fields it does not know.
"""
import argparse
import json

import openai


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8080/v1")
    ap.add_argument("--api-key", required=True, help="the daemon's token")
    ap.add_argument("--model", default="")
    ap.add_argument("--vector", default="happy")
    ap.add_argument("--coeff", type=float, default=1.5)
    ap.add_argument("--layers", default=None, help="SPEC as repengctl takes, e.g. -5..-18")
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--completion-prompt", default="Once upon a time,", help="the raw-text prompt of the completions calls")
    ap.add_argument("prompt")
    a = ap.parse_args()

    client = openai.OpenAI(base_url=a.base_url, api_key=a.api_key, max_retries=0)
    models = client.models.list()
    model = a.model or models.data[0].id
    print(json.dumps({"models": [m.id for m in models.data]}))

    steering = {"control": [{"vector": a.vector, "coeff": a.coeff}]}
    if a.layers:
        steering["layers"] = a.layers
    messages = [{"role": "user", "content": a.prompt}]

    chat = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=a.max_tokens,
                                          extra_body=steering)
    print(json.dumps({"chat": chat.choices[0].message.content, "finish_reason": chat.choices[0].finish_reason,
                      "usage": chat.usage.model_dump()}))

    text = ""
    for chunk in client.chat.completions.create(model=model, messages=messages, temperature=0,
                                                max_tokens=a.max_tokens, stream=True, extra_body=steering):
        for choice in chunk.choices:
            text += choice.delta.content or ""
    print(json.dumps({"chat_stream": text}))

    done = client.completions.create(model=model, prompt=a.completion_prompt, temperature=0, max_tokens=a.max_tokens,
                                     extra_body=steering)
    print(json.dumps({"completion": done.choices[0].text}))

    text = ""
    for chunk in client.completions.create(model=model, prompt=a.completion_prompt, temperature=0, max_tokens=a.max_tokens,
                                           stream=True, extra_body=steering):
        text += chunk.choices[0].text if chunk.choices else ""
    print(json.dumps({"completion_stream": text}))

    try:
        client.chat.completions.create(model=model, messages=messages, max_tokens=4,
                                       extra_body={"control": [{"vector": "no-such-vector", "coeff": 1}]})
        print(json.dumps({"error": None}))
    except openai.APIStatusError as e:
        print(json.dumps({"error_status": e.status_code, "error": e.message}))


if __name__ == "__main__":
    main()
