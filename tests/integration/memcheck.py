#!/usr/bin/env python3
"""Runs a real server under valgrind memcheck and fails on any memory error in any process.

    memcheck.py SWACTOR_BIN base|process

The server (master, workers and, in process mode, the master's reactor thread) serves HTTP/1.1
(keep-alive, `Connection: close`, HTTP/1.0, pipelining, a smuggling attempt, clients that
reset the connection while a large response streams), HTTP/2 (h2c and over TLS, with curl),
HTTPS, WebSocket, Redis (with a protocol error) and framed TCP for a moment, then stops on
SIGTERM with a handler still running (past max_wait_time). Every process's
valgrind log must end with "ERROR SUMMARY: 0 errors", definite leaks counted as errors. Exit 77
(skipped) without valgrind.

Why: use-after-frees in the reactor (a reply or a failed write that closed its connection,
followed by reads of the freed connection) and in a stopping worker (handlers resumed after
their runtime was destroyed) passed every functional test; only memcheck showed them.
"""
import base64
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

SKIP = 77


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(ports, proc, deadline):
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            for p in ports:
                socket.create_connection(("127.0.0.1", p), 1).close()
            return True
        except OSError:
            time.sleep(0.5)
    return False


def recv_until(s, pred, timeout=30.0):
    s.settimeout(timeout)
    data = b""
    end = time.time() + timeout
    while not pred(data) and time.time() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return data


def http_responses(data):
    return data.count(b"HTTP/1.1 200 OK\r\n")  # status lines (the echoed JSON says "HTTP/1.1" too)


def check(cond, what, failures):
    if not cond:
        failures.append(what)


def curl(args, failures, what):
    r = subprocess.run(["curl", "-sS", "--max-time", "60"] + args, capture_output=True)
    check(r.returncode == 0 and b'"method"' in r.stdout, f"{what}: rc {r.returncode} {r.stderr[:200]!r}", failures)


def drive(ports, failures):
    http, ws, redis, tcp, https = ports
    # HTTP/1.1 keep-alive, then a body, then pipelining, on one connection.
    with socket.create_connection(("127.0.0.1", http)) as s:
        for i in range(3):
            s.sendall(b"GET /k%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            r = recv_until(s, lambda d: b"\r\n\r\n" in d and d.rstrip().endswith(b"}"))
            check(r.startswith(b"HTTP/1.1 200"), "keep-alive GET %d: %r" % (i, r[:40]), failures)
        body = b"x" * 20000
        s.sendall(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        r = recv_until(s, lambda d: d.count(b"x") >= 20000)
        check(r.startswith(b"HTTP/1.1 200"), "POST: %r" % r[:40], failures)
        s.sendall(b"".join(b"GET /pipe%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5)))
        r = recv_until(s, lambda d: http_responses(d) >= 5 and d.rstrip().endswith(b"}"))
        check(http_responses(r) == 5, "pipelined: %d responses" % http_responses(r), failures)
    # Replies that end their connection: Connection: close, HTTP/1.0, a refused request.
    for req in [b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                b"GET /c10 HTTP/1.0\r\n\r\n",
                b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"]:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", http)) as s:
                s.sendall(req)
                r = recv_until(s, lambda d: False, timeout=20)  # until the server closes
                check(r.startswith(b"HTTP/1."), "closing reply to %r: %r" % (req[:20], r[:40]), failures)
    # A client that leaves in the middle of a body.
    with socket.create_connection(("127.0.0.1", http)) as s:
        s.sendall(b"POST /gone HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"y" * 1000)
        time.sleep(0.3)

    # WebSocket: handshake, three masked messages, close.
    with socket.create_connection(("127.0.0.1", ws)) as s:
        key = base64.b64encode(os.urandom(16))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        r = recv_until(s, lambda d: b"\r\n\r\n" in d)
        check(r.startswith(b"HTTP/1.1 101"), "websocket handshake: %r" % r[:40], failures)
        for text in [b"hello", b"m" * 300, b"z" * 70000]:
            mask = os.urandom(4)
            n = len(text)
            head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                    bytes([0x80 | 126]) + n.to_bytes(2, "big") if n < 65536 else
                                    bytes([0x80 | 127]) + n.to_bytes(8, "big"))
            s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(text)))
            r = recv_until(s, lambda d: len(d) >= n + 2)
            check(text in r, "websocket echo of %d bytes" % n, failures)
        mask = os.urandom(4)
        s.sendall(bytes([0x88, 0x82]) + mask + bytes(b ^ mask[i] for i, b in enumerate(b"\x03\xe8")))
        recv_until(s, lambda d: False, timeout=10)

    # Redis: a few commands, then a protocol error (answered, then the connection closes).
    with socket.create_connection(("127.0.0.1", redis)) as s:
        def cmd(*args):
            return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        s.sendall(cmd(b"SET", b"k", b"v") + cmd(b"GET", b"k") + cmd(b"INCR", b"n") +
                  cmd(b"HSET", b"h", b"f", b"v") + cmd(b"HGETALL", b"h") + cmd(b"EXPIRE", b"k", b"100"))
        r = recv_until(s, lambda d: d.endswith(b":1\r\n") and d.count(b"\r\n") >= 9)
        check(r.startswith(b"+OK\r\n$1\r\nv\r\n:1\r\n"), "redis replies: %r" % r[:60], failures)
        s.sendall(b"*-5\r\n*1\r\n$999999999999\r\n")
        r = recv_until(s, lambda d: False, timeout=10)
        check(b"-ERR Protocol error" in r, "redis protocol error: %r" % r[:60], failures)

    # HTTP/2 (h2c by prior knowledge and by Upgrade) and TLS (HTTP/1.1 and h2 by ALPN).
    url = f"http://127.0.0.1:{http}/h2?x=1"
    # One URL per curl: curl 7.88 fails a second prior-knowledge request on a reused
    # connection ("Error in the HTTP2 framing layer", against nghttpd too).
    curl(["--http2-prior-knowledge", url], failures, "h2c prior knowledge")
    curl(["--http2", "-d", "b" * 5000, url], failures, "h2c upgrade with a body")
    tls = f"https://127.0.0.1:{https}/tls"
    curl(["-k", "--http1.1", tls], failures, "https, HTTP/1.1")
    curl(["-k", "--http2", "-d", "c" * 5000, tls], failures, "https, h2")

    # Clients that leave while a large chunked response streams to them, over TLS and in
    # clear (a write that fails at once used to free the connection under its sender).
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for secure in (True, False, True):
        raw = socket.create_connection(("127.0.0.1", https if secure else http))
        s = ctx.wrap_socket(raw, server_hostname="localhost") if secure else raw
        s.sendall(b"GET /stream?chunks=200&size=60000 HTTP/1.1\r\nHost: x\r\n\r\n")
        got = recv_until(s, lambda d: len(d) >= 200000)
        check(got.startswith(b"HTTP/1.1 200"), "streamed response: %r" % got[:40], failures)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
        s.close()

    # Framed TCP (eof framing, "\n").
    with socket.create_connection(("127.0.0.1", tcp)) as s:
        s.sendall(b"one\ntwo\nthree\n")
        r = recv_until(s, lambda d: d.count(b"\n") >= 3)
        check(r == b"one\ntwo\nthree\n", "tcp echo: %r" % r, failures)


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("base", "process"):
        print(__doc__)
        return 2
    binary, mode = os.path.abspath(sys.argv[1]), sys.argv[2]
    valgrind = shutil.which("valgrind")
    if not valgrind:
        print("memcheck: valgrind not installed (scripts/install-deps.sh installs it): skipped")
        return SKIP
    for tool in ("curl", "openssl"):
        if not shutil.which(tool):
            print(f"memcheck: {tool} not installed (scripts/install-deps.sh installs it): skipped")
            return SKIP
    tmp = tempfile.mkdtemp(prefix="swactor-memcheck-")
    ports = [free_port() for _ in range(5)]
    while len(set(ports)) < 5:
        ports = [free_port() for _ in range(5)]
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", f"{tmp}/key.pem", "-out", f"{tmp}/cert.pem", "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    server = ('mode = "process"\nworkers = 2\nreactor_threads = 1\n' if mode == "process"
              else 'workers = 2\ntask_workers = 1\n')
    config = f"""[server]
{server}max_wait_time = "2s"
log_level = "info"
admin_socket = "{tmp}/admin.sock"

[tables.kv]
size = 256
columns = [ {{ name = "type", type = "int" }}, {{ name = "expire", type = "int" }},
            {{ name = "value", type = "string", size = 1024 }} ]

[modules.kv]
type = "redis_kv"
table = "kv"

[[listen]]
url = "http://127.0.0.1:{ports[0]}"
module = "http_echo"

[[listen]]
url = "ws://127.0.0.1:{ports[1]}"
module = "ws_echo"

[[listen]]
url = "redis://127.0.0.1:{ports[2]}"
module = "kv"

[[listen]]
url = "tcp://127.0.0.1:{ports[3]}"
module = "echo"
framing = {{ type = "eof", delimiter = "\\n" }}

[[listen]]
url = "https://127.0.0.1:{ports[4]}"
module = "http_echo"
tls = {{ cert = "{tmp}/cert.pem", key = "{tmp}/key.pem", alpn = ["h2", "http/1.1"] }}
"""
    with open(os.path.join(tmp, "app.toml"), "w") as f:
        f.write(config)
    log = open(os.path.join(tmp, "server.log"), "w")
    proc = subprocess.Popen([valgrind, "--trace-children=yes", "--num-callers=30", "--track-origins=yes",
                             "--leak-check=full", "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
                             "--suppressions=" + os.path.join(os.path.dirname(os.path.abspath(__file__)), "memcheck.supp"),
                             f"--log-file={tmp}/vg.%p.log", binary, "run", os.path.join(tmp, "app.toml")],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    failures = []
    try:
        if not wait_listening(ports, proc, time.time() + 120):
            failures.append("the server did not listen within 120 s under valgrind")
        else:
            time.sleep(3)  # every worker serving (they start one after the other under valgrind)
            drive(ports, failures)
            # A handler still running when the stop gives up on it (max_wait_time): its
            # worker must leave without resuming it on a destroyed runtime.
            late = socket.create_connection(("127.0.0.1", ports[0]))
            late.sendall(b"GET /late?delay=30000 HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            failures.append("the server did not stop within 120 s of SIGTERM")
        log.close()
    # Every process's log: its role, and its error summary.
    logs = sorted(f for f in os.listdir(tmp) if f.startswith("vg."))
    summaries = 0
    for name in logs:
        text = open(os.path.join(tmp, name), errors="replace").read()
        role = re.search(r"Command: (.*)", text)
        m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
        if not m:
            continue  # a process that exec'd: its log continues in the exec'd one's
        summaries += 1
        if int(m.group(1)) != 0:
            first = re.search(r"==\d+== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and|[\d,]+ (\([^)]*\) )?"
                              r"bytes in [\d,]+ blocks are definitely lost)[\s\S]*?\n==\d+== \n", text)
            failures.append(f"{name} ({role.group(1)[:80] if role else '?'}): {m.group(1)} error(s)\n"
                            f"{first.group(0) if first else ''}")
    server_log = open(os.path.join(tmp, "server.log"), errors="replace").read()
    if re.search(r"(exited unexpectedly|finished): killed by signal \d+ \((SIGSEGV|SIGABRT|SIGILL|SIGBUS|SIGFPE)\)",
                 server_log):
        failures.append("a process was killed by a signal:\n" + server_log[-3000:])
    expected = 3 if mode == "process" else 4  # the master, 2 workers (+ the task worker in base mode)
    if summaries < expected:
        failures.append(f"only {summaries} valgrind error summaries (expected {expected}: every process)")
    if failures:
        print(f"memcheck ({mode}): FAILED; logs in {tmp}")
        for f in failures:
            print(" -", f)
        return 1
    print(f"memcheck ({mode}): {summaries} processes, 0 errors")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
