#!/usr/bin/env python3
"""Protocol edge cases over raw sockets. Expected bytes are exactly what
redis-server 7.0 replies.

Usage:
  redis_edge.py --target HOST:PORT [--redis-server /usr/bin/redis-server] [-k NAME_SUBSTR]
  redis_edge.py --redis-server /usr/bin/redis-server      # only self-check against real Redis

With --redis-server the cases are first run against a private redis-server
(self-check), then against --target. Prints PASS/FAIL per case; exit 1 on any failure.
"""
import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp_util import encode, parse_hostport, start_redis  # noqa: E402

CLOSE = "close"      # connection must be closed by the server after the reply
OPEN = "open"        # connection must stay open (checked with a PING afterwards)

INLINE_MAX = 64 * 1024


def E(msg):
    return b"-ERR " + msg + b"\r\n"


def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


def proto_err(m):
    return E(b"Protocol error: " + m)


def unknown_err(name, args):
    """Redis 7.0 rule (server.c processCommand): append "'%.*s' " per arg while the
    accumulated text is shorter than 128 chars, each arg cut to 128-len(text)."""
    text = b""
    for a in args:
        if len(text) >= 128:
            break
        text += b"'" + a[:128 - len(text)] + b"' "
    return E(b"unknown command '" + name[:128] + b"', with args beginning with: " + text)


def mb(*args):
    return encode(list(args))


# (name, data-to-send (bytes or list of chunks), expected reply bytes, CLOSE/OPEN, options)
# options: bytewise=True -> send one byte at a time
def pipeline_case():
    cmds, exp = [], []
    for i in range(100):
        m = i % 5
        if m == 0:
            cmds.append(mb("SET", "edge:pipe:%d" % i, "v%d" % i)); exp.append(b"+OK\r\n")
        elif m == 1:
            cmds.append(mb("GET", "edge:pipe:%d" % (i - 1))); exp.append(bulk(b"v%d" % (i - 1)))
        elif m == 2:
            cmds.append(mb("INCR", "edge:pipe:ctr")); exp.append(b":%d\r\n" % (i // 5 + 1))
        elif m == 3:
            cmds.append(b"PING\r\n"); exp.append(b"+PONG\r\n")
        else:
            cmds.append(mb("ECHO", "e%d" % i)); exp.append(bulk(b"e%d" % i))
    setup = mb("DEL", "edge:pipe:ctr")
    return b"".join(cmds), b"".join(exp), setup


def build_cases():
    cases = []
    add = lambda name, data, exp, state=OPEN, **kw: cases.append((name, data, exp, state, kw))

    # --- multibulk header errors
    add("mbulk: '*abc' -> invalid multibulk length", b"*abc\r\n", proto_err(b"invalid multibulk length"), CLOSE)
    add("mbulk: '*3000000000' (> INT_MAX) -> invalid multibulk length", b"*3000000000\r\n",
        proto_err(b"invalid multibulk length"), CLOSE)
    add("mbulk: 100-digit count -> invalid multibulk length", b"*" + b"1" * 100 + b"\r\n",
        proto_err(b"invalid multibulk length"), CLOSE)
    add("mbulk: '*-1' is skipped, next command runs", b"*-1\r\nPING\r\n", b"+PONG\r\n", OPEN)
    add("mbulk: '*0' is skipped, next command runs", b"*0\r\n*1\r\n$4\r\nPING\r\n", b"+PONG\r\n", OPEN)
    add("mbulk: too big mbulk count string (>64KiB, no CRLF)", b"*" + b"1" * INLINE_MAX,
        proto_err(b"too big mbulk count string"), CLOSE)
    # --- bulk header errors
    add("bulk: '$600000000' (> 512MiB) -> invalid bulk length", b"*1\r\n$600000000\r\n",
        proto_err(b"invalid bulk length"), CLOSE)
    add("bulk: '$536870913' (512MiB+1) -> invalid bulk length", b"*1\r\n$536870913\r\n",
        proto_err(b"invalid bulk length"), CLOSE)
    add("bulk: '$abc' -> invalid bulk length", b"*1\r\n$abc\r\n", proto_err(b"invalid bulk length"), CLOSE)
    add("bulk: '$-1' inside a request -> invalid bulk length", b"*1\r\n$-1\r\n",
        proto_err(b"invalid bulk length"), CLOSE)
    add("bulk: 30-digit length -> invalid bulk length", b"*2\r\n$4\r\nECHO\r\n$" + b"9" * 30 + b"\r\n",
        proto_err(b"invalid bulk length"), CLOSE)
    add("bulk: too big bulk count string (>64KiB, no CRLF)", b"*1\r\n$" + b"1" * INLINE_MAX,
        proto_err(b"too big bulk count string"), CLOSE)
    add("bulk: expected '$', got 'x'", b"*1\r\nx\r\n", proto_err(b"expected '$', got 'x'"), CLOSE)
    add("bulk: expected '$', got ':'", b"*2\r\n$4\r\nECHO\r\n:1\r\n", proto_err(b"expected '$', got ':'"), CLOSE)
    add("mbulk: replies before a protocol error are delivered", b"PING\r\n*1\r\n$4\r\nPING\r\n*abc\r\nPING\r\n",
        b"+PONG\r\n+PONG\r\n" + proto_err(b"invalid multibulk length"), CLOSE)
    # --- inline
    add("inline: too big inline request (>64KiB, no newline)", b"a" * (INLINE_MAX + 1),
        proto_err(b"too big inline request"), CLOSE)
    add("inline: PING", b"PING\r\n", b"+PONG\r\n")
    add("inline: ping lowercase with LF only", b"ping\n", b"+PONG\r\n")
    add("inline: PING with argument", b"PING hello\r\n", bulk(b"hello"))
    add("inline: empty lines are ignored", b"\r\n   \r\n\r\nPING\r\n", b"+PONG\r\n")
    add("inline: double and single quotes", b"SET \"edge:a b\" 'c d'\r\nGET \"edge:a b\"\r\n",
        b"+OK\r\n" + bulk(b"c d"))
    add("inline: escapes \\x41\\n in double quotes", b'ECHO "\\x41\\n"\r\n', bulk(b"A\n"))
    add("inline: escapes \\t \\\" in double quotes", b'ECHO "a\\tb\\"c"\r\n', bulk(b'a\tb"c'))
    add("inline: \\' in single quotes", b"ECHO 'it\\'s'\r\n", bulk(b"it's"))
    add("inline: no escapes except \\' in single quotes", b"ECHO 'a\\nb'\r\n", bulk(b"a\\nb"))
    add("inline: empty quoted string", b'ECHO ""\r\n', bulk(b""))
    add("inline: unbalanced double quote", b'SET "abc\r\n', proto_err(b"unbalanced quotes in request"), CLOSE)
    add("inline: unbalanced single quote", b"GET 'abc\r\n", proto_err(b"unbalanced quotes in request"), CLOSE)
    add("inline: closing quote not followed by space", b'GET "a"b\r\n',
        proto_err(b"unbalanced quotes in request"), CLOSE)
    # --- command errors
    add("unknown command (inline) exact text", b"foo a b\r\n",
        E(b"unknown command 'foo', with args beginning with: 'a' 'b' "))
    add("unknown command (multibulk) exact text", mb("foo", "a", "b"),
        E(b"unknown command 'foo', with args beginning with: 'a' 'b' "))
    add("unknown command without args", mb("foo"), E(b"unknown command 'foo', with args beginning with: "))
    add("unknown command: empty name", b"*1\r\n$0\r\n\r\n", E(b"unknown command '', with args beginning with: "))
    add("unknown command: args truncated to 128 chars", b"foo " + b"a" * 200 + b" b\r\n",
        E(b"unknown command 'foo', with args beginning with: '" + b"a" * 128 + b"' "))
    many = [b"%c%c" % (c, c) for c in b"abcdefghijklmnopqrstuvwxyz"] + \
        [b"%c%c%c" % (c, c, c) for c in b"abcdefghijklmnopqrstuvwxyz"]
    add("unknown command: arg list stops after 128 chars", b"foo " + b" ".join(many) + b"\r\n",
        unknown_err(b"foo", many))
    add("unknown command: CR/LF in name replaced by spaces", b'"foo\\r\\nbar" x\r\n',
        E(b"unknown command 'foo  bar', with args beginning with: 'x' "))
    add("wrong arity: GET (inline)", b"GET\r\n", E(b"wrong number of arguments for 'get' command"))
    add("wrong arity: get a b (inline, lowercase)", b"get a b\r\n", E(b"wrong number of arguments for 'get' command"))
    add("wrong arity: SET k (multibulk)", mb("SET", "k"), E(b"wrong number of arguments for 'set' command"))
    add("wrong arity: PING a b", mb("PING", "a", "b"), E(b"wrong number of arguments for 'ping' command"))
    add("wrong arity: HSET k f", mb("hset", "k", "f"), E(b"wrong number of arguments for 'hset' command"))
    # --- QUIT
    add("QUIT (multibulk) -> +OK then close", mb("QUIT"), b"+OK\r\n", CLOSE)
    add("quit (inline, lowercase, extra arg) -> +OK then close", b"quit extra\r\n", b"+OK\r\n", CLOSE)
    add("QUIT: pipelined commands after QUIT are not executed",
        mb("PING") + mb("QUIT") + mb("SET", "edge:afterquit", "1"), b"+PONG\r\n+OK\r\n", CLOSE,
        after=(mb("EXISTS", "edge:afterquit"), b":0\r\n"), pre=mb("DEL", "edge:afterquit"))
    # --- transactions (each command checked when queued; EXEC answers them as one array)
    add("MULTI/EXEC pipelined: queued replies, then one array",
        mb("MULTI") + mb("SET", "edge:tx", "1") + mb("INCR", "edge:tx") + mb("INCR", "edge:tx:str") +
        mb("GET", "edge:tx") + mb("EXEC"),
        b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*4\r\n+OK\r\n:2\r\n:1\r\n" + bulk(b"2"),
        pre=mb("DEL", "edge:tx", "edge:tx:str"))
    add("MULTI: a refused command aborts EXEC, nothing runs",
        mb("MULTI") + mb("SET", "edge:tx2", "1") + mb("GET") + mb("EXEC") + mb("EXISTS", "edge:tx2"),
        b"+OK\r\n+QUEUED\r\n" + E(b"wrong number of arguments for 'get' command") +
        b"-EXECABORT Transaction discarded because of previous errors.\r\n:0\r\n", pre=mb("DEL", "edge:tx2"))
    add("MULTI: PUBLISH inside EXEC (the other workers are asked for their counts)",
        mb("MULTI") + mb("PUBLISH", "edge:nobody", "x") + mb("PING") + mb("EXEC"),
        b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:0\r\n+PONG\r\n")
    add("EXEC refused outside MULTI is worded for EXEC", mb("EXEC", "x") + mb("EXEC"),
        b"-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n" +
        E(b"EXEC without MULTI"))
    add("RESET pipelined after MULTI: the transaction is gone",
        mb("MULTI") + mb("PING") + b"RESET\r\n" + mb("EXEC"),
        b"+OK\r\n+QUEUED\r\n+RESET\r\n" + E(b"EXEC without MULTI"))
    # --- binary / sizes
    add("multibulk: binary-safe arg with NUL and CRLF", mb("ECHO", b"a\x00b\r\nc"), bulk(b"a\x00b\r\nc"))
    big = bytes((i * 7) & 0xFF for i in range(1 << 20))
    add("multibulk: 1 MiB bulk in one write", mb("ECHO", big), bulk(big))
    add("multibulk: 1 MiB bulk in 1000-byte chunks", mb("ECHO", big), bulk(big), chunk=1000)
    add("multibulk: SET/GET 200 KiB value", mb("SET", "edge:big", big[:200000]) + mb("GET", "edge:big") +
        mb("STRLEN", "edge:big") + mb("DEL", "edge:big"), b"+OK\r\n" + bulk(big[:200000]) + b":200000\r\n:1\r\n")
    # --- pipelining and fragmentation
    data, exp, setup = pipeline_case()
    add("pipeline: 100 commands in one write, replies in order", data, exp, pre=setup)
    split = (mb("SET", "edge:split", "hello world") + b"GET edge:split\r\n" +
             mb("ECHO", b"x\r\ny") + b"PING\r\n" + mb("DEL", "edge:split"))
    add("fragmentation: commands sent 1 byte at a time", split,
        b"+OK\r\n" + bulk(b"hello world") + bulk(b"x\r\ny") + b"+PONG\r\n:1\r\n", bytewise=True)
    add("fragmentation: protocol error arrives 1 byte at a time", b"PING\r\n*1\r\nx\r\n",
        b"+PONG\r\n" + proto_err(b"expected '$', got 'x'"), CLOSE, bytewise=True)
    return cases


def recv_expected(sock, n, timeout):
    """Read until n bytes, close, or timeout. Returns (data, closed)."""
    data = b""
    deadline = time.time() + timeout
    while len(data) < n:
        left = deadline - time.time()
        if left <= 0:
            return data, False
        sock.settimeout(left)
        try:
            d = sock.recv(1 << 16)
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True
        if not d:
            return data, True
        data += d
    return data, False


def wait_closed(sock, timeout):
    """True if the peer closes within timeout; extra bytes returned too."""
    extra = b""
    deadline = time.time() + timeout
    while True:
        left = deadline - time.time()
        if left <= 0:
            return False, extra
        sock.settimeout(left)
        try:
            d = sock.recv(1 << 16)
        except socket.timeout:
            return False, extra
        except ConnectionResetError:
            return True, extra
        if not d:
            return True, extra
        extra += d


def short(b, n=160):
    r = repr(b)
    return r if len(r) <= n else r[:n] + "...(%d bytes)" % len(b)


def run_case(addr, case, timeout=5.0):
    name, data, exp, state, kw = case
    s = socket.create_connection(addr, timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if "pre" in kw:
            s.sendall(kw["pre"])
            # read and discard one reply
            buf, _ = recv_expected(s, 1, timeout)
            while not buf.endswith(b"\r\n"):
                more, closed = recv_expected(s, 1, timeout)
                if not more:
                    break
                buf += more
        try:
            if kw.get("bytewise"):
                for i in range(len(data)):
                    s.sendall(data[i:i + 1])
                    time.sleep(0.001)
            elif kw.get("chunk"):
                c = kw["chunk"]
                for i in range(0, len(data), c):
                    s.sendall(data[i:i + c])
            else:
                s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # server may close before we finish writing (protocol errors)
        got, closed = recv_expected(s, len(exp), timeout)
        if got != exp:
            return False, "reply mismatch:\n      expected %s\n      got      %s%s" % (
                short(exp), short(got), " (connection closed)" if closed else "")
        if state == CLOSE:
            if not closed:
                closed, extra = wait_closed(s, 2.0)
                if extra:
                    return False, "unexpected extra bytes before close: %s" % short(extra)
                if not closed:
                    return False, "connection not closed by server after the reply"
        else:
            if closed:
                return False, "connection closed unexpectedly"
            try:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
            except OSError as e:
                return False, "connection unusable after case: %s" % e
            got2, closed2 = recv_expected(s, 7, timeout)
            if got2 != b"+PONG\r\n":
                return False, "follow-up PING got %s (extra/missing bytes?)" % short(got2)
        if "after" in kw:
            c2 = socket.create_connection(addr, timeout=timeout)
            c2.sendall(kw["after"][0])
            g, _ = recv_expected(c2, len(kw["after"][1]), timeout)
            c2.close()
            if g != kw["after"][1]:
                return False, "after-check %r expected %r got %r" % (kw["after"][0], kw["after"][1], g)
        return True, ""
    finally:
        s.close()


def run_all(addr, label, only):
    fails = 0
    total = 0
    for case in build_cases():
        if only and only.lower() not in case[0].lower():
            continue
        total += 1
        try:
            ok, why = run_case(addr, case)
        except Exception as e:  # noqa
            ok, why = False, "exception: %r" % (e,)
        print("%s [%s] %s%s" % ("PASS" if ok else "FAIL", label, case[0], "" if ok else "\n    " + why))
        fails += not ok
    print("[%s] %d/%d passed" % (label, total - fails, total))
    return fails


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target")
    ap.add_argument("--redis-server", help="also self-check against a private redis-server")
    ap.add_argument("-k", dest="only", help="run only cases whose name contains this")
    a = ap.parse_args()
    if not a.target and not a.redis_server:
        ap.error("need --target and/or --redis-server")
    fails = 0
    if a.redis_server:
        fails += run_all(start_redis(a.redis_server), "redis-server", a.only)
    if a.target:
        fails += run_all(parse_hostport(a.target), "target", a.only)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
