#!/usr/bin/env python3
"""Differential test: random commands against a target and a private redis-server,
comparing raw reply bytes.

Usage:
  redis_diff.py --target HOST:PORT [--redis-server /usr/bin/redis-server]
                [--seed 1] [--count 3000] [--resp 2|3] [--keep-going] [-v]
  redis_diff.py --self-test [--seed 1] ...   # target = a second private redis-server

Exit 0 on success (one summary line), 1 on the first mismatch (or at the end with
--keep-going), 2 on setup errors.
"""
import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp_util import Conn, Err, parse_hostport, start_redis  # noqa: E402

# ---------------------------------------------------------------------------
# data space

KEYS = [
    b"k1", b"k2", b"k3", b"k4", b"k5", b"str:a", b"str:b", b"num", b"num2", b"flt",
    b"h1", b"h2", b"h3", b"hash:user:1000",
    b"key with spaces", b"bin\x00key\r\n", b"{tag}x", b"x",
    b"L" * 40, b"unicode-\xc3\xa9\xe2\x82\xac",
]
HASHISH = KEYS[10:14] + [b"k1", b"key with spaces"]
STRINGISH = KEYS[0:10] + KEYS[14:20]
FIELDS = [b"f1", b"f2", b"f3", b"name", b"age", b"field with space", b"\x00bin\r\nf", b"n"]

INT_EDGE = [
    b"0", b"1", b"-1", b"10", b"-10", b"100", b"12345",
    b"9223372036854775807", b"-9223372036854775808",
    b"9223372036854775806", b"-9223372036854775807",
    b"4611686018427387904", b"-4611686018427387904",
]
INT_BAD = [
    b"9223372036854775808", b"-9223372036854775809", b"abc", b"1.5", b"", b" 1",
    b"1 ", b"+1", b"007", b"0x10", b"1e3", b"--1", b"-", b"12a", b"99999999999999999999",
]
FLOAT_GOOD = [
    b"0.1", b"0.2", b"-0.3", b"1.5", b"3.0e3", b"2e-2", b"-1E2", b"10.5", b"5", b"-7",
    b"0", b"1e17", b"1.23456789", b"0.0001", b"-0.1", b"1e20", b"7.0", b".5", b"5.",
]
FLOAT_BAD = [
    b"inf", b"-inf", b"+inf", b"nan", b"NaN", b"1.0.0", b"", b" 1", b"1 ", b"abc",
    b"1e5000", b"0x", b"infinity", b"1,5",
]


class Gen:
    def __init__(self, seed, count):
        self.r = random.Random(seed)
        self.count = count
        # relative expiries: K*mult + 3*idx seconds -> all distinct, ordering
        # deterministic even for GT/LT comparisons, nothing expires during a run
        self.mult = 10 * (3 * count + 1000)
        self.idx = 0

    # -- primitives --
    def key(self, pool=None):
        r = self.r
        if r.random() < 0.03:
            return b"missing:%d" % r.randrange(5)
        return r.choice(pool if pool and r.random() < 0.92 else KEYS)

    def field(self):
        return self.r.choice(FIELDS)

    def value(self, maxlen=100):
        r = self.r
        x = r.random()
        if x < 0.2:
            return r.choice([b"hello", b"world", b"foo", b"bar", b"value", b"abc", b"x"])
        if x < 0.35:
            return r.choice(INT_EDGE + [b"%d" % r.randrange(-1000, 1000)])
        if x < 0.45:
            return r.choice(FLOAT_GOOD + [b"1e5000"])
        if x < 0.5:
            return b""
        if x < 0.7:
            n = r.randrange(1, maxlen + 1)
            return bytes(r.randrange(256) for _ in range(n))
        if x < 0.8:
            return b"a\r\nb\x00c" + bytes(r.randrange(32) for _ in range(r.randrange(10)))
        n = r.randrange(0, maxlen + 1)
        return bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(n))

    def hvalue(self):
        r = self.r
        if r.random() < 0.4:
            return r.choice(INT_EDGE[:8] + [b"%d" % r.randrange(-100, 100)])
        return self.value(40)

    def intarg(self):
        r = self.r
        x = r.random()
        if x < 0.5:
            return b"%d" % r.randrange(-50, 50)
        if x < 0.8:
            return r.choice(INT_EDGE)
        return r.choice(INT_BAD)

    def rel_s(self):
        return self.r.randrange(1, 10) * self.mult + 3 * self.idx

    def expire_arg(self, unit):
        """Returns (arg_bytes) for EX/PX/EXAT/PXAT or EXPIRE-family commands."""
        r = self.r
        x = r.random()
        if x < 0.12:
            return r.choice([b"0", b"-1", b"-100", b"abc", b"1.5", b"", b"9223372036854775807",
                             b"-9223372036854775808", b"9223372036854775", b"92233720368547758",
                             b"9223372036854775808"])
        s = self.rel_s()
        if unit == "s":
            return b"%d" % s
        if unit == "ms":
            return b"%d" % (s * 1000 + r.randrange(500))
        if unit == "at_s":
            if r.random() < 0.05:
                return r.choice([b"1", b"1000000"])  # in the past
            return b"%d" % (int(time.time()) + s)
        if unit == "at_ms":
            if r.random() < 0.05:
                return r.choice([b"1", b"1000000000"])
            return b"%d" % (int(time.time() * 1000) + s * 1000 + r.randrange(500))
        raise ValueError(unit)

    def cmdname(self, name):
        r = self.r.random()
        if r < 0.9:
            return name.encode()
        if r < 0.95:
            return name.lower().encode()
        return bytes(c ^ 0x20 if (chr(c).isalpha() and self.r.random() < 0.5) else c
                     for c in name.encode())

    def pattern(self):
        return self.r.choice([b"*", b"k*", b"k?", b"*1*", b"str:*", b"h[12]", b"h[^1]*", b"[a-m]*",
                              b"nomatch*", b"*\\**", b"bin*", b"?", b"*e*", b"h\\1", b"{tag}*",
                              b"[", b"*[", b"L*L"])

    # -- commands --
    def next(self):
        """Returns (kind, args). kind: 'cmd', 'ttl', 'keys', 'scan', 'randomkey', 'shortexp'."""
        self.idx += 1
        r = self.r
        table = [
            (10, self.g_get), (14, self.g_set), (2, self.g_setnx), (2, self.g_setex),
            (2, self.g_mget), (3, self.g_mset), (2, self.g_getset), (2, self.g_getdel),
            (4, self.g_getex), (3, self.g_append), (2, self.g_strlen), (3, self.g_getrange),
            (3, self.g_setrange), (8, self.g_incr), (4, self.g_incrbyfloat),
            (3, self.g_del), (2, self.g_exists), (2, self.g_type), (6, self.g_expire),
            (5, self.g_ttl), (2, self.g_persist), (2, self.g_keys), (1, self.g_scan),
            (2, self.g_rename), (1, self.g_dbsize), (1, self.g_randomkey),
            (10, self.g_hset), (4, self.g_hget), (2, self.g_hmget), (2, self.g_hgetall),
            (2, self.g_hdel), (2, self.g_hexists), (1, self.g_hlen), (4, self.g_hincrby),
            (1, self.g_hkeys), (1, self.g_hvals), (2, self.g_ping), (0.3, self.g_shortexp),
            (0.5, self.g_arity),
        ]
        tot = sum(w for w, _ in table)
        x = r.random() * tot
        for w, f in table:
            x -= w
            if x <= 0:
                return f()
        return table[-1][1]()

    def C(self, name, *args):
        return ("cmd", [self.cmdname(name)] + list(args))

    def g_get(self):
        if self.r.random() < 0.03:
            return self.C("GET")
        return self.C("GET", self.key(STRINGISH))

    def g_set(self):
        r = self.r
        args = [self.key(STRINGISH), self.value()]
        opts = []
        x = r.random()
        if x < 0.3:
            pass
        elif x < 0.85:
            # valid-ish combos
            if r.random() < 0.6:
                u = r.choice(["EX", "PX", "EXAT", "PXAT", "KEEPTTL"])
                if u == "KEEPTTL":
                    opts.append(b"KEEPTTL")
                else:
                    opts += [u.encode(), self.expire_arg({"EX": "s", "PX": "ms", "EXAT": "at_s",
                                                          "PXAT": "at_ms"}[u])]
            if r.random() < 0.3:
                opts.append(r.choice([b"NX", b"XX"]))
            if r.random() < 0.25:
                opts.append(b"GET")
            r.shuffle(opts) if r.random() < 0.3 and b"KEEPTTL" in opts else None
        else:
            # invalid combos
            opts = r.choice([
                [b"NX", b"XX"], [b"EX", b"10", b"PX", b"100"], [b"KEEPTTL", b"EX", b"100"],
                [b"EX"], [b"PX"], [b"EX", b"abc"], [b"FOO"], [b"EX", b"0"], [b"PX", b"-5"],
                [b"EXAT", b"0"], [b"GET", b"GET"], [b"NX", b"NX"], [b"EX", b"100", b"EX", b"200"],
                [b"KEEPTTL", b"PXAT", b"99999999999999"], [b"XX", b"NX", b"GET"],
                [b"ex", b"100", b"nx"], [b"EX", b"9223372036854775807"], [b"PX", b"9223372036854775807"],
                [b"EXAT", b"9223372036854775807"], [b"PXAT", b"9223372036854775807"],
            ])
        if r.random() < 0.02:
            return self.C("SET", args[0])
        return self.C("SET", *(args + [o for o in opts if o is not None]))

    def g_setnx(self):
        if self.r.random() < 0.05:
            return self.C("SETNX", self.key())
        return self.C("SETNX", self.key(STRINGISH), self.value())

    def g_setex(self):
        r = self.r
        name = r.choice(["SETEX", "PSETEX"])
        if r.random() < 0.05:
            return self.C(name, self.key(STRINGISH), b"100")
        t = self.expire_arg("s" if name == "SETEX" else "ms")
        return self.C(name, self.key(STRINGISH), t, self.value())

    def g_mget(self):
        n = self.r.randrange(0, 6)
        return self.C("MGET", *[self.key(STRINGISH) for _ in range(n)])

    def g_mset(self):
        r = self.r
        name = r.choice(["MSET", "MSET", "MSETNX"])
        n = r.randrange(1, 5)
        args = []
        for _ in range(n):
            args += [self.key(STRINGISH), self.value()]
        if r.random() < 0.07:
            args = args[:-1]
        if r.random() < 0.03:
            args = []
        return self.C(name, *args)

    def g_getset(self):
        if self.r.random() < 0.05:
            return self.C("GETSET", self.key())
        return self.C("GETSET", self.key(STRINGISH), self.value())

    def g_getdel(self):
        if self.r.random() < 0.05:
            return self.C("GETDEL", self.key(), self.key())
        return self.C("GETDEL", self.key(STRINGISH))

    def g_getex(self):
        r = self.r
        k = self.key(STRINGISH)
        x = r.random()
        if x < 0.25:
            return self.C("GETEX", k)
        if x < 0.4:
            return self.C("GETEX", k, b"PERSIST")
        if x < 0.85:
            u = r.choice(["EX", "PX", "EXAT", "PXAT"])
            return self.C("GETEX", k, u.encode(), self.expire_arg({"EX": "s", "PX": "ms",
                                                                   "EXAT": "at_s", "PXAT": "at_ms"}[u]))
        return self.C("GETEX", *([k] + r.choice([
            [b"PERSIST", b"EX", b"100"], [b"EX"], [b"EX", b"100", b"PX", b"100"], [b"FOO"],
            [b"KEEPTTL"], [b"EX", b"0"], [b"PX", b"abc"], [b"PERSIST", b"PERSIST"], [],
        ]) if x < 0.97 else []))

    def g_append(self):
        if self.r.random() < 0.04:
            return self.C("APPEND", self.key())
        return self.C("APPEND", self.key(STRINGISH), self.value(40))

    def g_strlen(self):
        return self.C("STRLEN", self.key(STRINGISH))

    def g_getrange(self):
        r = self.r
        name = "GETRANGE"
        a = lambda: r.choice([b"%d" % r.randrange(-120, 120), b"0", b"-1", b"9223372036854775807",
                              b"-9223372036854775808", b"abc", b"99999999999999999999"])
        if r.random() < 0.05:
            return self.C(name, self.key(STRINGISH), a())
        return self.C(name, self.key(STRINGISH), a(), a())

    def g_setrange(self):
        r = self.r
        off = r.choice([b"%d" % r.randrange(0, 120)] * 6 + [b"0", b"-1", b"abc", b"536870912",
                                                              b"536870911", b"9223372036854775807"])
        v = self.value(30)
        if off in (b"536870911",) and v:
            v = v[:1]
        if off == b"536870911" and r.random() < 0.5:
            v = b""  # 0-length at huge offset: no allocation
        if off == b"536870911" and v:
            off = b"536870912"  # avoid actually allocating 512 MiB
        if r.random() < 0.04:
            return self.C("SETRANGE", self.key(STRINGISH), off)
        return self.C("SETRANGE", self.key(STRINGISH), off, v)

    def g_incr(self):
        r = self.r
        name = r.choice(["INCR", "DECR", "INCRBY", "DECRBY"])
        k = r.choice([b"num", b"num2", b"num", b"x"]) if r.random() < 0.75 else self.key(STRINGISH)
        if r.random() < 0.1:
            # seed near-limit values to provoke overflow
            return self.C("SET", k, r.choice(INT_EDGE + INT_BAD[:2]))
        if name in ("INCR", "DECR"):
            if r.random() < 0.03:
                return self.C(name, k, b"1")
            return self.C(name, k)
        if r.random() < 0.03:
            return self.C(name, k)
        return self.C(name, k, self.intarg())

    def g_incrbyfloat(self):
        r = self.r
        k = r.choice([b"flt", b"flt", b"num2", b"x"]) if r.random() < 0.75 else self.key(STRINGISH)
        x = r.random()
        if x < 0.1:
            return self.C("SET", k, r.choice(FLOAT_GOOD + [b"1e5000", b"abc", b"0.1"]))
        if x < 0.8:
            inc = r.choice(FLOAT_GOOD)
        elif x < 0.95:
            inc = r.choice(FLOAT_BAD)
        else:
            return self.C("INCRBYFLOAT", k)
        return self.C("INCRBYFLOAT", k, inc)

    def g_del(self):
        name = self.r.choice(["DEL", "UNLINK"])
        n = self.r.choice([0, 1, 1, 1, 2, 3])
        return self.C(name, *[self.key() for _ in range(n)])

    def g_exists(self):
        n = self.r.choice([0, 1, 1, 2, 4])
        return self.C("EXISTS", *[self.key() for _ in range(n)])

    def g_type(self):
        if self.r.random() < 0.03:
            return self.C("TYPE")
        return self.C("TYPE", self.key())

    def g_expire(self):
        r = self.r
        name = r.choice(["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"])
        unit = {"EXPIRE": "s", "PEXPIRE": "ms", "EXPIREAT": "at_s", "PEXPIREAT": "at_ms"}[name]
        args = [self.key(), self.expire_arg(unit)]
        x = r.random()
        if x < 0.5:
            pass
        elif x < 0.85:
            args.append(r.choice([b"NX", b"XX", b"GT", b"LT", b"nx", b"gt"]))
        else:
            args += r.choice([[b"NX", b"XX"], [b"GT", b"LT"], [b"NX", b"GT"], [b"FOO"], [b"XX", b"GT"],
                              [b"XX", b"LT"], [b"GT", b"GT"]])
        if r.random() < 0.03:
            args = args[:1]
        return self.C(name, *args)

    def g_ttl(self):
        name = self.r.choice(["TTL", "PTTL"])
        if self.r.random() < 0.03:
            return self.C(name)
        return ("ttl", [self.cmdname(name), self.key()])

    def g_persist(self):
        return self.C("PERSIST", self.key())

    def g_keys(self):
        if self.r.random() < 0.03:
            return self.C("KEYS")
        return ("keys", [self.cmdname("KEYS"), self.pattern()])

    def g_scan(self):
        r = self.r
        if r.random() < 0.2:
            return self.C("SCAN", *r.choice([
                [], [b"abc"], [b"0", b"COUNT", b"0"], [b"0", b"COUNT", b"abc"], [b"0", b"MATCH"],
                [b"0", b"FOO", b"bar"], [b"18446744073709551616"], [b"0", b"COUNT"],
                [b"0", b"COUNT", b"-1"], [b"1.5"],
            ]))
        opts = []
        if r.random() < 0.5:
            opts += [b"MATCH", self.pattern()]
        if r.random() < 0.5:
            opts += [b"COUNT", r.choice([b"1", b"2", b"5", b"10", b"1000"])]
        if r.random() < 0.2:
            opts = opts[2:] + opts[:2]
        return ("scan", opts)

    def g_rename(self):
        if self.r.random() < 0.04:
            return self.C("RENAME", self.key())
        return self.C("RENAME", self.key(), self.key())

    def g_dbsize(self):
        if self.r.random() < 0.05:
            return self.C("DBSIZE", b"x")
        return self.C("DBSIZE")

    def g_randomkey(self):
        if self.r.random() < 0.05:
            return self.C("RANDOMKEY", b"x")
        return ("randomkey", [self.cmdname("RANDOMKEY")])

    def g_hset(self):
        r = self.r
        k = self.key(HASHISH)
        n = r.choice([1, 1, 1, 2, 3])
        args = []
        for _ in range(n):
            args += [self.field(), self.hvalue()]
        if r.random() < 0.05:
            args = args[:-1]
        return self.C("HSET", k, *args)

    def g_hget(self):
        if self.r.random() < 0.04:
            return self.C("HGET", self.key(HASHISH))
        return self.C("HGET", self.key(HASHISH), self.field())

    def g_hmget(self):
        n = self.r.randrange(0, 4)
        return self.C("HMGET", self.key(HASHISH), *[self.field() for _ in range(n)])

    def g_hgetall(self):
        return self.C("HGETALL", self.key(HASHISH))

    def g_hdel(self):
        n = self.r.randrange(0, 3)
        return self.C("HDEL", self.key(HASHISH), *[self.field() for _ in range(n)])

    def g_hexists(self):
        if self.r.random() < 0.04:
            return self.C("HEXISTS", self.key(HASHISH))
        return self.C("HEXISTS", self.key(HASHISH), self.field())

    def g_hlen(self):
        return self.C("HLEN", self.key(HASHISH))

    def g_hincrby(self):
        r = self.r
        k = self.key(HASHISH)
        f = r.choice([b"n", b"age", b"f1"]) if r.random() < 0.6 else self.field()
        if r.random() < 0.1:
            return self.C("HSET", k, f, r.choice(INT_EDGE[7:] + [b"abc", b"1.5"]))
        if r.random() < 0.04:
            return self.C("HINCRBY", k, f)
        return self.C("HINCRBY", k, f, self.intarg())

    def g_hkeys(self):
        return self.C("HKEYS", self.key(HASHISH))

    def g_hvals(self):
        return self.C("HVALS", self.key(HASHISH))

    def g_ping(self):
        r = self.r
        x = r.random()
        if x < 0.4:
            return self.C("PING")
        if x < 0.7:
            return self.C("PING", self.value(30))
        if x < 0.8:
            return self.C("PING", b"a", b"b")
        if x < 0.95:
            return self.C("ECHO", self.value(60))
        return self.C("ECHO", *r.choice([[], [b"a", b"b"]]))

    def g_shortexp(self):
        r = self.r
        k = self.key(STRINGISH)
        v = self.value(20)
        setups = r.choice([
            [[b"SET", k, v, b"PX", b"50"]],
            [[b"PSETEX", k, b"50", v]],
            [[b"SET", k, v], [b"PEXPIRE", k, b"50"]],
            [[b"SET", k, v], [b"GETEX", k, b"PX", b"50"]],
            [[b"SET", k, v], [b"PEXPIREAT", k, b"%d" % (int(time.time() * 1000) + 50)]],
        ])
        return ("shortexp", [setups, k])

    def g_arity(self):
        r = self.r
        # wrong arity for commands with fixed arity, plus unknown command
        return self.C(*r.choice([
            ["GETDEL"], ["STRLEN", b"a", b"b"], ["INCR"], ["DECRBY", b"a"], ["PERSIST"],
            ["TTL", b"a", b"b"], ["HLEN"], ["HGETALL", b"a", b"b"], ["HKEYS"], ["HVALS", b"a", b"b"],
            ["EXPIRE", b"a"], ["HDEL", b"a"], ["HMGET", b"a"], ["MGET"], ["HINCRBY", b"a", b"b"],
            ["GETRANGE", b"a", b"0"], ["SETEX", b"a", b"10"], ["APPEND", b"a"], ["DEL"], ["UNLINK"],
            ["EXISTS"], ["RENAME", b"a", b"b", b"c"], ["KEYS", b"a", b"b"], ["INCRBYFLOAT", b"a"],
        ]))


# ---------------------------------------------------------------------------

class Mismatch(Exception):
    pass


def ttl_class(v):
    if not isinstance(v, int):
        return ("other", v)
    return v if v < 0 else ">=0"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", help="HOST:PORT of the server under test")
    ap.add_argument("--redis-server", default="/usr/bin/redis-server")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--resp", type=int, choices=[2, 3], default=2)
    ap.add_argument("--self-test", action="store_true",
                    help="start a second private redis-server and use it as target")
    ap.add_argument("--keep-going", action="store_true", help="report all mismatches, not just the first")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--stats", action="store_true", help="print reply-kind statistics at the end")
    a = ap.parse_args()
    if not a.target and not a.self_test:
        ap.error("--target or --self-test required")

    try:
        ref_addr = start_redis(a.redis_server)
        tgt_addr = start_redis(a.redis_server) if a.self_test else parse_hostport(a.target)
        ref = Conn(*ref_addr)
        tgt = Conn(*tgt_addr)
    except Exception as e:
        print("setup error: %s" % e)
        return 2

    stats = {"sent": 0, "compared": 0, "mismatches": 0}
    gen = Gen(a.seed, a.count)

    def report(idx, cmd, rt, rr, why=""):
        stats["mismatches"] += 1
        print("MISMATCH seed=%d index=%d resp=%d %s" % (a.seed, idx, a.resp, why))
        print("  command: %r" % (cmd,))
        print("  target : %r" % (rt,))
        print("  redis  : %r" % (rr,))
        if not a.keep_going:
            raise Mismatch()

    def both(args):
        stats["sent"] += 1
        ref.send(*args)
        tgt.send(*args)
        rr = ref.read()
        try:
            rt = tgt.read()
        except Exception as e:  # connection closed / timeout / garbage
            rt = (("<target error: %s>" % e).encode(), None)
            report(gen.idx, args, rt[0], rr[0], "target I/O error")
            raise Mismatch()
        return rt, rr

    kinds = {}

    def cmp_raw(idx, args, rt, rr):
        stats["compared"] += 1
        if a.stats:
            key = rr[0][:60] if rr[0][:1] in (b"-", b"!") else rr[0][:1]
            key = (args[0].upper(), key)
            kinds[key] = kinds.get(key, 0) + 1
        if rt[0] != rr[0]:
            report(idx, args, rt[0], rr[0])

    def scan_all(conn, opts):
        cur = b"0"
        keys = set()
        raws = []
        for _ in range(10000):
            stats["sent"] += 1
            raw, v = conn.call(b"SCAN", cur, *opts)
            raws.append(raw)
            if (not isinstance(v, list) or len(v) != 2 or not isinstance(v[0], bytes)
                    or not isinstance(v[1], list)):
                return None, raw
            keys.update(v[1])
            cur = v[0]
            if cur == b"0":
                return keys, raws
        return None, b"<SCAN did not terminate after 10000 calls>"

    rc = 0
    try:
        # --- setup
        if a.resp == 3:
            for c in (ref, tgt):
                raw, v = c.call(b"HELLO", b"3")
                if not raw.startswith(b"%"):
                    print("HELLO 3 failed on %s: %r" % ("target" if c is tgt else "redis", raw))
                    return 2
        for c in (tgt, ref):
            raw, v = c.call(b"FLUSHALL")
            if isinstance(v, Err):  # target might not implement FLUSHALL
                _, ks = c.call(b"KEYS", b"*")
                for k in ks or []:
                    c.call(b"DEL", k)
        for c in (tgt, ref):
            raw, v = c.call(b"DBSIZE")
            if v != 0:
                print("could not empty the %s database: DBSIZE -> %r" % ("target" if c is tgt else "redis", raw))
                return 2

        # --- random run
        for i in range(1, a.count + 1):
            kind, args = gen.next()
            idx = gen.idx
            if a.verbose:
                print(idx, kind, args)
            if kind == "cmd":
                rt, rr = both(args)
                cmp_raw(idx, args, rt, rr)
            elif kind == "ttl":
                rt, rr = both(args)
                stats["compared"] += 1
                tv, rv = rt[1], rr[1]
                if not isinstance(rv, int):
                    if rt[0] != rr[0]:
                        report(idx, args, rt[0], rr[0])
                    continue
                tol = 1 if args[0].upper() == b"TTL" else 200
                if ttl_class(tv) != ttl_class(rv) or abs(tv - rv) > tol:
                    report(idx, args, rt[0], rr[0], "(TTL tolerance %d)" % tol)
            elif kind == "keys":
                rt, rr = both(args)
                stats["compared"] += 1
                if isinstance(rr[1], list):
                    if not isinstance(rt[1], list) or sorted(rt[1]) != sorted(rr[1]):
                        report(idx, args, rt[0], rr[0], "(KEYS compared as sorted sets)")
                    elif rt[0][:1] != rr[0][:1]:
                        report(idx, args, rt[0], rr[0], "(KEYS reply type differs)")
                elif rt[0] != rr[0]:
                    report(idx, args, rt[0], rr[0])
            elif kind == "scan":
                kt, rawt = scan_all(tgt, args)
                kr, rawr = scan_all(ref, args)
                stats["compared"] += 1
                if kr is None:
                    print("internal: reference SCAN failed: %r" % (rawr,))
                    return 2
                if kt is None or kt != kr:
                    report(idx, [b"SCAN", b"<iterate>"] + args,
                           sorted(kt) if kt is not None else rawt, sorted(kr), "(SCAN union of keys)")
            elif kind == "randomkey":
                rt, rr = both(args)
                stats["compared"] += 1
                if rr[1] is None or rt[1] is None:
                    if rt[0] != rr[0]:
                        report(idx, args, rt[0], rr[0], "(RANDOMKEY nil vs non-nil)")
                else:
                    if not isinstance(rt[1], bytes) or rt[0][:1] != b"$":
                        report(idx, args, rt[0], rr[0], "(RANDOMKEY must be a bulk string)")
                        continue
                    stats["sent"] += 1
                    raw, v = tgt.call(b"EXISTS", rt[1])
                    if v != 1:
                        report(idx, args, rt[0], rr[0], "(RANDOMKEY returned a key that does not exist: EXISTS -> %r)" % raw)
            elif kind == "shortexp":
                setups, k = args
                for s in setups:
                    rt, rr = both(s)
                    cmp_raw(idx, s, rt, rr)
                time.sleep(0.12)
                for s in ([b"GET", k], [b"EXISTS", k], [b"PTTL", k]):
                    rt, rr = both(s)
                    cmp_raw(idx, s, rt, rr)
                    exp = {b"GET": (b"$-1\r\n", b"_\r\n"), b"EXISTS": (b":0\r\n",), b"PTTL": (b":-2\r\n",)}[s[0]]
                    if rr[0] not in exp:
                        print("internal: reference did not expire %r: %r -> %r" % (k, s, rr[0]))
                        return 2
            else:
                raise AssertionError(kind)

        # --- final state check
        kt = sorted(tgt.call(b"KEYS", b"*")[1] or [])
        kr = sorted(ref.call(b"KEYS", b"*")[1] or [])
        stats["sent"] += 2
        stats["compared"] += 1
        if kt != kr:
            report(gen.idx, [b"KEYS", b"*", b"<final>"], kt, kr, "(final key set)")
        for k in kr:
            for c in ([b"TYPE", k], [b"GET", k], [b"HGETALL", k], [b"TTL", k]):
                rt, rr = both(c)
                if c[0] == b"TTL":
                    stats["compared"] += 1
                    if ttl_class(rt[1]) != ttl_class(rr[1]) or (isinstance(rr[1], int) and isinstance(rt[1], int) and abs(rt[1] - rr[1]) > 1):
                        report(gen.idx, c + [b"<final>"], rt[0], rr[0])
                else:
                    cmp_raw(gen.idx, c + [b"<final>"], rt, rr)
    except Mismatch:
        rc = 1
    except (ConnectionError, OSError) as e:
        print("I/O error at seed=%d index=%d: %s" % (a.seed, gen.idx, e))
        rc = 1
    if stats["mismatches"]:
        rc = 1
    if a.stats:
        for k in sorted(kinds):
            print("  %5d %-12s %r" % (kinds[k], k[0].decode("latin1"), k[1]))
    print("%s: seed=%d resp=%d commands=%d sent=%d compared=%d mismatches=%d" % (
        "OK" if rc == 0 else "FAIL", a.seed, a.resp, gen.idx, stats["sent"], stats["compared"],
        stats["mismatches"]))
    return rc


if __name__ == "__main__":
    sys.exit(main())
