#!/usr/bin/env python3
"""A fixed number of `tools/call echo` requests over HTTP/1.1 keep-alive, for instruction and
allocation counts (bench/instructions.sh): the server runs under valgrind, so what matters is
that every run sends exactly the same requests, not how fast this client is.

  fixed_client.py --port P --family stateless|session --requests N [--conns C] [--size B]

The request is byte for byte what bench/compare.sh's wrk sends (compare_report.py builds it).
C connections are opened first (a session client initialises one session, shared as wrk
shares it); then the N requests go out round-robin, C at a time, each connection waiting for
its answer before its next request. Every answer must be a 200 whose body is the echo result;
the first one is also checked in full. Exit 1 on any failure. Loopback only.
"""

import argparse
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_report  # noqa: E402  (the request both benchmarks send)


def headers_of(family, session_id):
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if family == "stateless":
        h.update({"Mcp-Protocol-Version": compare_report.STATELESS_VERSION,
                  "Mcp-Method": "tools/call", "Mcp-Name": "echo"})
    else:
        h.update({"Mcp-Protocol-Version": compare_report.SESSION_VERSION, "Mcp-Session-Id": session_id})
    return h


def request_bytes(port, headers, body):
    lines = [f"POST /mcp HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, raw):
        self.sock.sendall(raw)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def response(self):
        """(status, headers dict with lower-case names, body) of the next response."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if "content-length" in hdrs:
            n = int(hdrs["content-length"])
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
        elif hdrs.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                n = int(size_line.split(b";")[0], 16)
                while len(self.buf) < n + 2:
                    self._fill()
                body += self.buf[:n]
                self.buf = self.buf[n + 2:]
                if n == 0:
                    break
        else:
            body = b""
        return status, hdrs, body


def open_session(port):
    c = Conn(port)
    init = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": compare_report.SESSION_VERSION, "capabilities": {},
        "clientInfo": {"name": "fixed-client", "version": "1"}}}).encode()
    base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    c.send(request_bytes(port, base, init))
    status, hdrs, _ = c.response()
    sid = hdrs.get("mcp-session-id")
    if status != 200 or not sid:
        raise SystemExit(f"initialize failed: {status}")
    note = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
    c.send(request_bytes(port, dict(base, **{"Mcp-Session-Id": sid,
                                             "Mcp-Protocol-Version": compare_report.SESSION_VERSION}), note))
    c.response()
    c.sock.close()
    return sid


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--family", choices=["stateless", "session"], required=True)
    ap.add_argument("--requests", type=int, required=True)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--any-body", action="store_true", help="accept any 200 body (the hyper ceiling)")
    a = ap.parse_args()
    if not 1 <= a.conns <= 256 or not 0 <= a.requests <= 10_000_000:
        raise SystemExit("--conns 1..256, --requests 0..10,000,000")
    sid = open_session(a.port) if a.family == "session" else ""
    raw = request_bytes(a.port, headers_of(a.family, sid), compare_report.call_body(a.family, a.size).encode())
    want = compare_report.message(a.size)
    conns = [Conn(a.port) for _ in range(a.conns)]
    sent = 0
    checked = False
    while sent < a.requests:
        batch = conns[: min(len(conns), a.requests - sent)]
        for c in batch:
            c.send(raw)
        for c in batch:
            status, _, body = c.response()
            if status != 200:
                raise SystemExit(f"answer {sent}: HTTP {status}: {body[:200]!r}")
            if not a.any_body and not checked:
                v = json.loads(body)
                text = v["result"]["content"][0]["text"]
                if v.get("id") != 1 or text != want:
                    raise SystemExit(f"unexpected answer: {body[:300]!r}")
                checked = True
            sent += 1
    for c in conns:
        c.sock.close()
    print(json.dumps({"requests": sent, "conns": a.conns, "family": a.family}))


if __name__ == "__main__":
    main()
