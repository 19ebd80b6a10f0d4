#!/usr/bin/env python3
"""A misbehaving HTTP/2 client for repengd's abuse tests (Debian's python3-h2).

It speaks gRPC over HTTP/2 by hand so that it can do what well-behaved clients never do:

    window0   open N Generate streams with a flow-control window of 0 and never read
    oversize  send one Generate request whose message is BYTES long
    streams   open N streams at once on one connection (the peer's advertised limit is
              read first and reported; streams past it are not sent)

    python3 scripts/abuse/h2_abuse.py --socket S window0 --streams 8 --max-tokens 2048 --hold 5
    python3 scripts/abuse/h2_abuse.py --socket S oversize --bytes 17000000

It prints one JSON object: per stream the gRPC status and message seen (if any), DATA bytes
received, RST_STREAM codes, and whether the connection got a GOAWAY.
"""
import argparse
import json
import socket
import struct
import sys
import time
import urllib.parse

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

GENERATE = "/repeng.v1.Repeng/Generate"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, wire, payload):
    key = varint(number << 3 | wire)
    if wire == 0:
        return key + varint(payload)
    return key + varint(len(payload)) + payload


def generate_request(prompt, max_tokens):
    """repeng.v1.GenerateRequest{prompt = 2, max_tokens = 4}."""
    return field(2, 2, prompt.encode()) + field(4, 0, max_tokens)


def grpc_frame(message):
    return b"\x00" + struct.pack(">I", len(message)) + message


class Client:
    def __init__(self, path, window):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.settimeout(0.2)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.conn.initiate_connection()
        self.flush()
        self.streams = {}
        self.pending = {}
        self.goaway = None
        self.closed = False

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def open(self, path, message):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [
            (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
            ("content-type", "application/grpc"), ("te", "trailers"),
        ])
        body = grpc_frame(message)
        self.streams[sid] = {"status": None, "message": None, "data_bytes": 0, "reset": None}
        self.pending[sid] = body
        self.flush()
        self.send_pending()
        return sid

    def send_pending(self):
        for sid in list(self.pending):
            body = self.pending[sid]
            while body:
                window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
                if window <= 0:
                    break
                chunk, body = body[:window], body[window:]
                try:
                    self.conn.send_data(sid, chunk, end_stream=not body)
                except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                    body = b""  # the server ended the stream: stop sending
                    break
                self.flush()
            if body:
                self.pending[sid] = body
            else:
                del self.pending[sid]

    def pump(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self.closed:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                self.closed = True
                break
            if not data:
                self.closed = True
                break
            for ev in self.conn.receive_data(data):
                self.handle(ev)
            self.send_pending()
            self.flush()

    def handle(self, ev):
        s = self.streams.get(getattr(ev, "stream_id", None))
        if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
            for k, v in ev.headers:
                if k == "grpc-status":
                    s["status"] = int(v)
                elif k == "grpc-message":
                    s["message"] = urllib.parse.unquote(v)
        elif isinstance(ev, h2.events.DataReceived):
            s["data_bytes"] += len(ev.data)
            # Never acknowledged: the window stays where it is.
        elif isinstance(ev, h2.events.StreamReset):
            if s is not None:
                s["reset"] = int(ev.error_code)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = int(ev.error_code)
            self.closed = True
        elif isinstance(ev, h2.events.WindowUpdated):
            pass

    def report(self, **extra):
        out = {"goaway": self.goaway, "closed": self.closed,
               "peer_max_concurrent_streams": self.conn.remote_settings.max_concurrent_streams,
               "streams": [dict(id=k, **v) for k, v in sorted(self.streams.items())]}
        out.update(extra)
        return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--socket", required=True)
    sub = p.add_subparsers(dest="mode", required=True)
    w = sub.add_parser("window0")
    w.add_argument("--streams", type=int, default=8)
    w.add_argument("--max-tokens", type=int, default=2048)
    w.add_argument("--hold", type=float, default=5)
    o = sub.add_parser("oversize")
    o.add_argument("--bytes", type=int, default=17 << 20)
    s = sub.add_parser("streams")
    s.add_argument("--count", type=int, default=101)
    s.add_argument("--max-tokens", type=int, default=2)
    s.add_argument("--hold", type=float, default=30)
    args = p.parse_args()

    if args.mode == "window0":
        c = Client(args.socket, window=0)
        c.pump(0.3)
        for i in range(args.streams):
            c.open(GENERATE, generate_request("Count: " + ", ".join(str(k) for k in range(1, 9 + i)) + ",", args.max_tokens))
        c.pump(args.hold)
        print(json.dumps(c.report()))
    elif args.mode == "oversize":
        c = Client(args.socket, window=65535)
        c.pump(0.3)
        c.open(GENERATE, generate_request("x" * args.bytes, 1))
        c.pump(10)
        print(json.dumps(c.report()))
    elif args.mode == "streams":
        c = Client(args.socket, window=65535)
        c.pump(0.3)  # read the server's SETTINGS first
        limit = c.conn.remote_settings.max_concurrent_streams
        n = min(args.count, limit)
        for i in range(n):
            c.open(GENERATE, generate_request("Hello %d" % i, args.max_tokens))
        end = time.monotonic() + args.hold
        while time.monotonic() < end and not c.closed and any(v["status"] is None and v["reset"] is None
                                                              for v in c.streams.values()):
            c.pump(0.2)
        print(json.dumps(c.report(sent=n, asked=args.count)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
