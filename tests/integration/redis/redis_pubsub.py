#!/usr/bin/env python3
"""Pub/Sub black-box test (exact bytes as redis-server 7.0 sends them).

Usage:
  redis_pubsub.py --target HOST:PORT [--clients N] [--messages M] [--redis-server PATH]
  redis_pubsub.py --redis-server /usr/bin/redis-server   # self-check only

N RESP2 subscribers + 1 RESP3 subscriber (HELLO 3) each SUBSCRIBE <chan> and
PSUBSCRIBE <pat>.*; one publisher. Checks subscribe/psubscribe/unsubscribe/
punsubscribe replies, message/pmessage frames (RESP2 '*', RESP3 '>'), PUBLISH
receiver counts, subscribed-mode command restrictions (RESP2) and PING replies.
Channel names get a per-run suffix so concurrent users of the server do not
disturb the counts. Exit 1 on any failure.
"""
import argparse
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp_util import encode, parse_hostport, start_redis  # noqa: E402


def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


class Raw(bytes):
    """An already-encoded RESP frame (integer, nil)."""


def arr(hdr, *items):
    out = b"%s%d\r\n" % (hdr, len(items))
    for it in items:
        out += it if isinstance(it, Raw) else bulk(it)
    return out


def I(n):
    return Raw(b":%d\r\n" % n)


class Failure(Exception):
    pass


class Client:
    def __init__(self, addr, name, timeout=5.0):
        self.name = name
        self.s = socket.create_connection(addr, timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.timeout = timeout

    def send(self, *args):
        self.s.sendall(encode(list(args)))

    def expect(self, exp, what):
        deadline = time.time() + self.timeout
        while len(self.buf) < len(exp):
            left = deadline - time.time()
            if left <= 0:
                break
            self.s.settimeout(left)
            try:
                d = self.s.recv(1 << 16)
            except socket.timeout:
                break
            if not d:
                break
            self.buf += d
        got, self.buf = self.buf[:len(exp)], self.buf[len(exp):]
        if got != exp:
            raise Failure("%s: %s\n    expected %s\n    got      %s" % (self.name, what, short(exp), short(got)))

    def expect_nothing(self, what, wait=0.2):
        self.s.settimeout(wait)
        try:
            d = self.s.recv(1 << 16)
            self.buf += d
        except socket.timeout:
            pass
        if self.buf:
            raise Failure("%s: %s: unexpected bytes %s" % (self.name, what, short(self.buf)))

    def hello3(self):
        self.send("HELLO", "3")
        deadline = time.time() + self.timeout
        # read the whole HELLO map: parse lazily with resp_util
        from resp_util import parse, Incomplete
        while True:
            try:
                v, end = parse(self.buf, 0)
                break
            except Incomplete:
                if time.time() > deadline:
                    raise Failure("%s: HELLO 3 timed out" % self.name)
                self.s.settimeout(self.timeout)
                d = self.s.recv(1 << 16)
                if not d:
                    raise Failure("%s: closed during HELLO 3" % self.name)
                self.buf += d
        raw, self.buf = self.buf[:end], self.buf[end:]
        if not raw.startswith(b"%"):
            raise Failure("%s: HELLO 3 did not return a map: %s" % (self.name, short(raw)))

    def close(self):
        self.s.close()


def short(b, n=200):
    r = repr(b)
    return r if len(r) <= n else r[:n] + "...(%d bytes)" % len(b)


def run(addr, nclients, nmsg, label):
    results = []

    def check(name, fn):
        try:
            fn()
            print("PASS [%s] %s" % (label, name))
            results.append(True)
        except Failure as e:
            print("FAIL [%s] %s\n    %s" % (label, name, e))
            results.append(False)
            return False
        except OSError as e:
            print("FAIL [%s] %s\n    I/O error: %r" % (label, name, e))
            results.append(False)
            return False
        return True

    sfx = b"%d.%d" % (os.getpid(), random.randrange(1 << 30))
    chan = b"chan." + sfx
    pat = b"pat." + sfx + b".*"
    pchan = lambda x: b"pat." + sfx + b"." + x
    both = b"pat." + sfx + b".both"  # subscribed as channel AND matched by the pattern

    subs2 = [Client(addr, "sub%d(resp2)" % i) for i in range(nclients)]
    sub3 = Client(addr, "sub(resp3)")
    pub = Client(addr, "publisher")
    subs = subs2 + [sub3]
    nsubs = len(subs)

    def P(hdr, kind, *rest):
        return arr(hdr, kind, *rest)

    def hdr(c):
        return b">" if c is sub3 else b"*"

    def t_hello():
        sub3.hello3()

    def t_subscribe():
        for c in subs:
            c.send("SUBSCRIBE", chan, both)
        for c in subs:
            c.expect(P(hdr(c), b"subscribe", chan, I(1)) + P(hdr(c), b"subscribe", both, I(2)),
                     "SUBSCRIBE reply")
        for c in subs:
            c.send("PSUBSCRIBE", pat)
        for c in subs:
            c.expect(P(hdr(c), b"psubscribe", pat, I(3)), "PSUBSCRIBE reply")

    def msg(c, ch, payload):
        return P(hdr(c), b"message", ch, payload)

    def pmsg(c, ch, payload):
        return P(hdr(c), b"pmessage", pat, ch, payload)

    rnd = random.Random(1)
    payloads = [b"hello", b"", b"a\r\nb\x00c", bytes(range(256)), b"x" * 100000] + \
        [bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 200))) for _ in range(max(0, nmsg - 5))]

    def t_publish_channel():
        for p in payloads:
            pub.send("PUBLISH", chan, p)
        pub.expect(b"".join(I(nsubs) for _ in payloads), "PUBLISH counts (channel)")
        for c in subs:
            c.expect(b"".join(msg(c, chan, p) for p in payloads), "message frames")

    def t_publish_pattern():
        for i, p in enumerate(payloads):
            pub.send("PUBLISH", pchan(b"%d" % i), p)
        pub.expect(b"".join(I(nsubs) for _ in payloads), "PUBLISH counts (pattern)")
        for c in subs:
            c.expect(b"".join(pmsg(c, pchan(b"%d" % i), p) for i, p in enumerate(payloads)),
                     "pmessage frames")

    def t_publish_both():
        pub.send("PUBLISH", both, b"twice")
        pub.expect(I(2 * nsubs), "PUBLISH count (channel + pattern match)")
        for c in subs:
            c.expect(msg(c, both, b"twice") + pmsg(c, both, b"twice"),
                     "message then pmessage for a channel matched both ways")

    def t_publish_nobody():
        pub.send("PUBLISH", b"nobody." + sfx, b"x")
        pub.expect(I(0), "PUBLISH to channel without subscribers")
        pub.send("PUBLISH", b"x")
        pub.expect(b"-ERR wrong number of arguments for 'publish' command\r\n", "PUBLISH arity")
        for c in subs:
            c.expect_nothing("no message expected")

    def t_interleaved():
        # messages interleaved between two channels arrive in publish order
        seq = []
        for i in range(50):
            if i % 2:
                pub.send("PUBLISH", chan, b"m%d" % i)
                seq.append(("m", chan, b"m%d" % i))
            else:
                pub.send("PUBLISH", pchan(b"i"), b"m%d" % i)
                seq.append(("p", pchan(b"i"), b"m%d" % i))
        pub.expect(I(nsubs) * 50, "PUBLISH counts")
        for c in subs:
            c.expect(b"".join(msg(c, ch, p) if k == "m" else pmsg(c, ch, p) for k, ch, p in seq),
                     "interleaved frames in order")

    def t_restricted():
        c = subs2[0]
        c.send("GET", "foo")
        c.expect(b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET"
                 b" are allowed in this context\r\n", "GET in RESP2 subscribed mode")
        c.send("set", "foo", "bar")
        c.expect(b"-ERR Can't execute 'set': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET"
                 b" are allowed in this context\r\n", "set (lowercase) in RESP2 subscribed mode")
        # A container's subcommand is named in full, and an unknown one is reported first.
        c.send("CLIENT", "ID")
        c.expect(b"-ERR Can't execute 'client|id': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET"
                 b" are allowed in this context\r\n", "CLIENT ID in RESP2 subscribed mode")
        c.send("CLIENT", "FOO")
        c.expect(b"-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n", "CLIENT FOO in RESP2 subscribed mode")

    def t_ping2():
        c = subs2[-1]
        c.send("PING")
        c.expect(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n", "PING in RESP2 subscribed mode")
        c.send("PING", "hi")
        c.expect(b"*2\r\n$4\r\npong\r\n$2\r\nhi\r\n", "PING hi in RESP2 subscribed mode")

    def t_resp3_cmds():
        sub3.send("PING")
        sub3.expect(b"+PONG\r\n", "PING in RESP3 subscribed mode")
        sub3.send("GET", b"nokey." + sfx)
        sub3.expect(b"_\r\n", "GET allowed in RESP3 subscribed mode")

    def t_unsubscribe():
        c = subs2[0]
        c.send("UNSUBSCRIBE", chan)
        c.expect(P(b"*", b"unsubscribe", chan, I(2)), "UNSUBSCRIBE chan")
        pub.send("PUBLISH", chan, b"after")
        pub.expect(I(nsubs - 1), "PUBLISH count after one UNSUBSCRIBE")
        for s in subs[1:]:
            s.expect(msg(s, chan, b"after"), "message after another client unsubscribed")
        c.send("PUNSUBSCRIBE")
        c.expect(P(b"*", b"punsubscribe", pat, I(1)), "PUNSUBSCRIBE (all)")
        c.send("UNSUBSCRIBE")
        c.expect(P(b"*", b"unsubscribe", both, I(0)), "UNSUBSCRIBE (all)")
        c.send("UNSUBSCRIBE")
        c.expect(P(b"*", b"unsubscribe", Raw(b"$-1\r\n"), I(0)), "UNSUBSCRIBE with no subscriptions")
        c.send("PUNSUBSCRIBE")
        c.expect(P(b"*", b"punsubscribe", Raw(b"$-1\r\n"), I(0)), "PUNSUBSCRIBE with no subscriptions")
        c.send("PING")
        c.expect(b"+PONG\r\n", "PING after leaving subscribed mode")
        c.send("GET", b"nokey." + sfx)
        c.expect(b"$-1\r\n", "GET after leaving subscribed mode")
        c.expect_nothing("no messages after unsubscribing")

    def t_unsubscribe3():
        sub3.send("UNSUBSCRIBE", chan)
        sub3.expect(P(b">", b"unsubscribe", chan, I(2)), "RESP3 UNSUBSCRIBE chan")
        sub3.send("UNSUBSCRIBE")
        sub3.expect(P(b">", b"unsubscribe", both, I(1)), "RESP3 UNSUBSCRIBE (all)")
        sub3.send("PUNSUBSCRIBE")
        sub3.expect(P(b">", b"punsubscribe", pat, I(0)), "RESP3 PUNSUBSCRIBE (all)")
        sub3.send("UNSUBSCRIBE")
        sub3.expect(P(b">", b"unsubscribe", Raw(b"_\r\n"), I(0)), "RESP3 UNSUBSCRIBE with no subscriptions")
        pub.send("PUBLISH", chan, b"last")
        pub.expect(I(nsubs - 2), "PUBLISH count after two clients left")
        for s in subs[1:-1]:
            s.expect(msg(s, chan, b"last"), "message")
        sub3.expect_nothing("RESP3 client gets nothing after unsubscribing")

    def t_disconnect():
        # closing subscriber connections must drop their subscriptions
        for s in subs[1:-1]:
            s.close()
        deadline = time.time() + 3
        while True:
            pub.send("PUBLISH", chan, b"gone")
            try:
                pub.expect(I(0), "PUBLISH count after subscribers disconnected")
                return
            except Failure:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    def t_arity():
        subs2[0].send("SUBSCRIBE")
        subs2[0].expect(b"-ERR wrong number of arguments for 'subscribe' command\r\n", "SUBSCRIBE arity")
        subs2[0].send("PSUBSCRIBE")
        subs2[0].expect(b"-ERR wrong number of arguments for 'psubscribe' command\r\n", "PSUBSCRIBE arity")

    steps = [("HELLO 3 on the RESP3 subscriber", t_hello),
             ("SUBSCRIBE/PSUBSCRIBE replies (%d RESP2 + 1 RESP3 subscribers)" % nclients, t_subscribe),
             ("PUBLISH to channel: every subscriber gets every message (%d msgs)" % len(payloads), t_publish_channel),
             ("PUBLISH to pattern channels: pmessage frames", t_publish_pattern),
             ("PUBLISH to channel matched as channel and pattern", t_publish_both),
             ("PUBLISH without receivers / arity", t_publish_nobody),
             ("interleaved channel/pattern messages keep order", t_interleaved),
             ("RESP2 subscribed mode rejects GET/SET with exact error", t_restricted),
             ("RESP2 subscribed mode PING replies", t_ping2),
             ("RESP3 subscribed mode PING and GET", t_resp3_cmds),
             ("UNSUBSCRIBE/PUNSUBSCRIBE replies and counts (RESP2)", t_unsubscribe),
             ("UNSUBSCRIBE/PUNSUBSCRIBE replies (RESP3 push)", t_unsubscribe3),
             ("SUBSCRIBE/PSUBSCRIBE without args", t_arity),
             ("subscriptions dropped on disconnect", t_disconnect)]
    for name, fn in steps:
        if not check(name, fn) and name.startswith(("HELLO", "SUBSCRIBE/PSUBSCRIBE replies")):
            break  # later steps depend on these
    for c in subs + [pub]:
        try:
            c.close()
        except OSError:
            pass
    ok = sum(results)
    print("[%s] %d/%d passed" % (label, ok, len(results)))
    return len(results) - ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target")
    ap.add_argument("--clients", type=int, default=10, help="number of RESP2 subscribers (plus 1 RESP3)")
    ap.add_argument("--messages", type=int, default=50)
    ap.add_argument("--redis-server", help="also self-check against a private redis-server")
    a = ap.parse_args()
    if not a.target and not a.redis_server:
        ap.error("need --target and/or --redis-server")
    if a.clients < 2:
        ap.error("--clients must be >= 2")
    fails = 0
    if a.redis_server:
        fails += run(start_redis(a.redis_server), a.clients, a.messages, "redis-server")
    if a.target:
        fails += run(parse_hostport(a.target), a.clients, a.messages, "target")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
