"""Shared helpers for the Redis-protocol black-box tests (stdlib only).

- RESP2/RESP3 incremental parser that keeps the raw reply bytes
- raw-socket client
- launcher for a private redis-server (always killed at exit)
"""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


class Err(bytes):
    """Error reply ('-' or '!' frame); the bytes are the message."""


class Simple(bytes):
    """Simple string reply ('+')."""


class Map(list):
    """RESP3 map ('%'): flat list k1, v1, k2, v2 ..."""


class Push(list):
    """RESP3 push ('>')."""


class RSet(list):
    """RESP3 set ('~')."""


class Incomplete(Exception):
    pass


class ProtocolError(Exception):
    pass


def _line(buf, pos):
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete()
    return buf[pos:end], end + 2


def parse(buf, pos=0):
    """Parse one reply at buf[pos:]. Returns (value, newpos); raises Incomplete."""
    if pos >= len(buf):
        raise Incomplete()
    t = buf[pos:pos + 1]
    line, nxt = _line(buf, pos + 1)
    if t == b"+":
        return Simple(line), nxt
    if t == b"-":
        return Err(line), nxt
    if t == b":":
        return int(line), nxt
    if t in (b"$", b"!", b"="):
        n = int(line)
        if n < 0:
            return None, nxt
        if len(buf) < nxt + n + 2:
            raise Incomplete()
        if buf[nxt + n:nxt + n + 2] != b"\r\n":
            raise ProtocolError("bulk not terminated by CRLF")
        data = buf[nxt:nxt + n]
        return (Err(data) if t == b"!" else data), nxt + n + 2
    if t in (b"*", b"~", b">", b"%", b"|"):
        n = int(line)
        if n < 0:
            return None, nxt
        cnt = n * 2 if t in (b"%", b"|") else n
        items = []
        p = nxt
        for _ in range(cnt):
            v, p = parse(buf, p)
            items.append(v)
        if t == b"|":  # attribute: skip it, return the following value
            return parse(buf, p)
        cls = {b"*": list, b"~": RSet, b">": Push, b"%": Map}[t]
        return cls(items), p
    if t == b"_":
        return None, nxt
    if t == b",":
        return ("double", line), nxt
    if t == b"#":
        return line == b"t", nxt
    if t == b"(":
        return int(line), nxt
    raise ProtocolError("unknown reply type byte %r at offset %d" % (t, pos))


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, *args):
        self.sock.sendall(encode(args))

    def read(self):
        """Return (raw_bytes, parsed_value) of the next reply."""
        while True:
            try:
                val, end = parse(self.buf, 0)
            except Incomplete:
                d = self.sock.recv(1 << 16)
                if not d:
                    raise ConnectionError("connection closed by peer (buffered: %r)" % self.buf[:200])
                self.buf += d
                continue
            raw = self.buf[:end]
            self.buf = self.buf[end:]
            return raw, val

    def call(self, *args):
        self.send(*args)
        return self.read()

    def read_until_close(self, timeout=2.0):
        """Read everything until the peer closes. Returns (data, closed)."""
        data = self.buf
        self.buf = b""
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(1 << 16)
                if not d:
                    return data, True
                data += d
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def parse_hostport(s):
    host, _, port = s.rpartition(":")
    return (host or "127.0.0.1"), int(port)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


_children = []


def _kill_children():
    for p, d in _children:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(5)
            except Exception:
                pass
        shutil.rmtree(d, ignore_errors=True)
    _children.clear()


atexit.register(_kill_children)


def _on_signal(signum, frame):
    _kill_children()
    sys.exit(128 + signum)


for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    try:
        signal.signal(_s, _on_signal)
    except (ValueError, OSError):
        pass


def _pdeathsig():
    """Child side: get SIGKILL when the parent dies (Linux), even on kill -9 of the test."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def start_redis(binary, extra=()):
    """Start a private redis-server on a free port; returns (host, port)."""
    d = tempfile.mkdtemp(prefix="redis-test-")
    last = None
    for _ in range(5):
        port = free_port()
        p = subprocess.Popen(
            [binary, "--save", "", "--appendonly", "no", "--port", str(port),
             "--bind", "127.0.0.1", "--daemonize", "no", "--dir", d, *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=d,
            preexec_fn=_pdeathsig if sys.platform.startswith("linux") else None)
        _children.append((p, d))
        deadline = time.time() + 10
        while time.time() < deadline and p.poll() is None:
            try:
                c = Conn("127.0.0.1", port, timeout=2)
                raw, _ = c.call("PING")
                c.close()
                if raw == b"+PONG\r\n":
                    return "127.0.0.1", port
            except OSError:
                time.sleep(0.05)
        last = p.poll()
        if p.poll() is None:
            p.kill()
    raise RuntimeError("could not start %s (last exit code %r)" % (binary, last))
