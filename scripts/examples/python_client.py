#!/usr/bin/env python3
"""A repengd client in Python with grpcio: status, tokenize, set-control, streaming generate.

Generate the message and stub modules once from the repository root (Debian packages
python3-grpcio, python3-protobuf, protobuf-compiler, protobuf-compiler-grpc):

    mkdir -p /tmp/repeng-py
    protoc -I proto --python_out=/tmp/repeng-py --grpc_python_out=/tmp/repeng-py \
        --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin proto/repeng/v1/repeng.proto

then run:

    PYTHONPATH=/tmp/repeng-py python3 scripts/examples/python_client.py --socket SOCKET \
        [--vector NAME --coefficient 8] "What are you doing this weekend?"

It prints JSON lines: the daemon's status, the prompt's token ids, the text generated without
control and (with --vector) with it, and the final statistics of each generation.
"""
import argparse
import json
import os
import sys

import grpc

from repeng.v1 import repeng_pb2, repeng_pb2_grpc


def generate(stub, prompt, max_tokens, control=None):
    """Streams one chat generation; returns the text and the final `done` message."""
    request = repeng_pb2.GenerateRequest(max_tokens=max_tokens)
    request.chat.messages.add(role="user", content=prompt)
    if control is not None:
        request.control.CopyFrom(control)
    text = []
    done = None
    for event in stub.Generate(request):
        kind = event.WhichOneof("event")
        if kind == "chunk":
            text.append(event.chunk.text)
        elif kind == "done":
            done = event.done
    return "".join(text), done


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", default=os.environ.get("REPENG_SOCKET"), required="REPENG_SOCKET" not in os.environ)
    parser.add_argument("--vector", help="vector name for the controlled generation")
    parser.add_argument("--coefficient", type=float, default=8.0)
    parser.add_argument("--layers", default="", help="comma list of block ids, e.g. --layers=-5,-6,-7 (default: the vector's)")
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("prompt")
    args = parser.parse_args()

    # grpcio speaks to Unix sockets with the unix: scheme (absolute path: unix:///path).
    target = "unix://" + os.path.abspath(args.socket)
    with grpc.insecure_channel(target) as channel:
        stub = repeng_pb2_grpc.RepengStub(channel)
        status = stub.Status(repeng_pb2.StatusRequest(), timeout=30)
        print(json.dumps({"version": status.version, "default_model": status.default_model, "pid": status.pid}))

        ids = stub.Tokenize(repeng_pb2.TokenizeRequest(text=args.prompt), timeout=30).ids
        print(json.dumps({"ids": list(ids)}))

        text, done = generate(stub, args.prompt, args.max_tokens)
        print(json.dumps({"baseline": text, "completion_tokens": done.completion_tokens,
                          "finish_reason": repeng_pb2.FinishReason.Name(done.finish_reason)}))

        if args.vector:
            control = repeng_pb2.Control(terms=[repeng_pb2.ControlTerm(vector=args.vector, coefficient=args.coefficient)])
            if args.layers:
                control.layers.extend(int(x) for x in args.layers.split(","))
            # Per-request control; SetControl with the same message would make it the model's default.
            text, done = generate(stub, args.prompt, args.max_tokens, control)
            print(json.dumps({"controlled": text, "completion_tokens": done.completion_tokens}))

        # Errors arrive as gRPC status codes with a readable message.
        try:
            stub.SetControl(repeng_pb2.SetControlRequest(control=repeng_pb2.Control(
                terms=[repeng_pb2.ControlTerm(vector="no-such-vector", coefficient=1.0)])), timeout=30)
        except grpc.RpcError as e:
            print(json.dumps({"error_code": e.code().name, "error": e.details()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
