#!/usr/bin/env python3
"""Counted cost of HTTPS requests: userland instructions (callgrind, every process of the
server summed) and system calls (strace -f -c) per request, from the difference between a
small and a large run, so start-up, handshakes of the kept-alive connections and shutdown
cancel out. The TLS counterpart of ../shared/tools/ipm.py --proto http (which speaks plain
TCP only); the figures in docs/benchmarks.md ("TLS counted") come from it.

  scripts/count-tls.py [--new-connections | --resume] [--conns C] [--small N1] [--large N2] -- SERVER_CMD...

SERVER_CMD must serve https on 127.0.0.1:{port} ({port} is replaced; $PORT is exported), stay
in the foreground and stop on SIGTERM to its process group. Keep-alive: C connections send
GET / one after the other (defaults 10, 2000, 12000). --new-connections: a new connection,
full handshake (no resumption) and one GET per request (defaults 10, 200, 600). --resume: the
same, each connection resuming the session its client thread got on its previous one (a TLS 1.3
ticket; the first connection of each thread does a full handshake, in both runs)."""
import glob
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def pick_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def open_tls(ctx, port, session=None):
    raw = socket.create_connection(("127.0.0.1", port), timeout=60)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return ctx.wrap_socket(raw, session=session)


def one_response(conn):
    """Reads one response with a Content-Length body; False when the server closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    need = int(m.group(1)) if m else 0
    while len(body) < need:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        body += chunk
    return True


def load(port, conns, total, new_connections, resume=False):
    """Sends `total` requests over `conns` client threads; returns (done, errors)."""
    per = total // conns
    errors = []
    resumed = []

    def client():
        ctx = client_context()
        try:
            conn = None
            for i in range(per):
                if conn is None or new_connections:
                    session = None
                    if conn is not None:
                        # A TLS 1.3 ticket arrives after the handshake: read with the response.
                        session = conn.session if resume else None
                        conn.close()
                    conn = open_tls(ctx, port, session)
                    if conn.session_reused:
                        resumed.append(1)
                conn.sendall(REQUEST)
                if not one_response(conn):
                    raise OSError("connection closed before the response")
            conn.close()
        except OSError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=client) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if resume and len(resumed) != per * conns - conns:
        errors.append(f"{len(resumed)} of {per * conns - conns} connections resumed their session")
    return per * conns, errors


def measure(cmd, tool, conns, n, new_connections, resume=False):
    """Runs the server under `tool` with `n` requests; returns (count, requests, errors)."""
    out = tempfile.mkdtemp(prefix="ipm-")  # the prefix count-round-trip.sh profiles
    port = pick_port()
    argv = [a.replace("{port}", str(port)) for a in cmd]
    if tool == "callgrind":
        wrap = ["valgrind", "--tool=callgrind", "--trace-children=yes", "--dump-instr=no",
                f"--callgrind-out-file={out}/cg.%p"]
    else:
        wrap = ["strace", "-f", "-c", "-o", f"{out}/strace.txt"]
    server = subprocess.Popen(wrap + argv, stdout=subprocess.DEVNULL, stderr=open(f"{out}/stderr.txt", "w"),
                              start_new_session=True, env=dict(os.environ, PORT=str(port)))
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.3)
    time.sleep(1.0)  # every process up
    done, errors = load(port, conns, n, new_connections, resume)
    time.sleep(0.5)
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    total = 0
    if tool == "callgrind":
        for path in glob.glob(f"{out}/cg.*"):
            with open(path, errors="replace") as f:
                for line in f:
                    if line.startswith(("summary:", "totals:")):
                        total += int(line.split()[1])
                        break
    else:
        with open(f"{out}/strace.txt") as f:
            for line in f:
                fields = line.split()
                if fields and fields[-1] == "total":
                    total = int(fields[3] if len(fields) > 4 else fields[2])
    return total, done, errors


def main():
    args = sys.argv[1:]
    if "--" not in args:
        print(__doc__)
        sys.exit(2)
    opts, cmd = args[:args.index("--")], args[args.index("--") + 1:]
    resume = "--resume" in opts
    new_connections = "--new-connections" in opts or resume
    opts = [o for o in opts if o not in ("--new-connections", "--resume")]
    settings = {"--conns": 10, "--small": 200 if new_connections else 2000,
                "--large": 600 if new_connections else 12000}
    for key, value in zip(opts[::2], opts[1::2]):
        settings[key] = int(value)
    conns, small, large = settings["--conns"], settings["--small"], settings["--large"]
    unit = "connection" if new_connections else "request"
    parts = []
    for tool, what in (("callgrind", "instructions"), ("strace", "syscalls")):
        c1, d1, e1 = measure(cmd, tool, conns, small, new_connections, resume)
        c2, d2, e2 = measure(cmd, tool, conns, large, new_connections, resume)
        if e1 or e2:  # a figure from failed requests would measure nothing
            sys.exit(f"count-tls: {len(e1) + len(e2)} client(s) failed under {tool}, e.g. {(e1 + e2)[0]}")
        per = (c2 - c1) / max(1, d2 - d1)
        parts.append(f"{what}/{unit} {per:.0f}" if tool == "callgrind" else f"{what}/{unit} {per:.2f}")
        parts.append(f"({c1} @ {d1}, {c2} @ {d2}; errors {len(e1) + len(e2)})")
    print(" ".join(parts))


main()
