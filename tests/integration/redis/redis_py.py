#!/usr/bin/python3
"""redis-py (Debian's python3-redis) against a redis_kv listener: its default pipeline is a
MULTI/EXEC transaction, and its optimistic-locking helper uses WATCH.

Usage: redis_py.py --target HOST:PORT
Exit 0 when every check holds, 1 with the failing check named.
"""
import argparse
import sys
import threading

import redis


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    a = ap.parse_args()
    host, port = a.target.rsplit(":", 1)
    r = redis.Redis(host=host, port=int(port), socket_timeout=10)
    checks = 0

    def check(what, cond):
        nonlocal checks
        checks += 1
        if not cond:
            print("FAIL:", what)
            sys.exit(1)

    r.delete("py:a", "py:b", "py:counter", "py:h")
    # The default pipeline: MULTI, the commands, EXEC, one round trip.
    p = r.pipeline()
    p.set("py:a", "1").incr("py:a").get("py:a").hset("py:h", mapping={"f": "v", "g": "w"}).hgetall("py:h")
    got = p.execute()
    check("pipeline results %r" % (got,), got == [True, 2, b"2", 2, {b"f": b"v", b"g": b"w"}])
    # An error inside the transaction is its own result; the rest ran.
    p = r.pipeline()
    p.set("py:b", "x").incr("py:b").set("py:a", "10")
    try:
        p.execute()
        check("an error in EXEC raises", False)
    except redis.ResponseError as e:
        check("the error names the command: %s" % e, "not an integer" in str(e))
    check("the command after the error ran", r.get("py:a") == b"10")
    # A command refused while queueing aborts the whole transaction.
    p = r.pipeline()
    p.set("py:a", "11").execute_command("NOSUCHCOMMAND", "x")
    try:
        p.execute()
        check("a refused command aborts", False)
    except redis.ResponseError as e:
        check("EXECABORT: %s" % e, "EXECABORT" in str(e) or "unknown command" in str(e))
    check("nothing ran after EXECABORT", r.get("py:a") == b"10")
    # Non-transactional pipeline: plain pipelining.
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.incr("py:counter")
    check("100 pipelined INCR", p.execute()[-1] == 100)

    # WATCH: redis-py's transaction() retries when a watched key changed under it. Two
    # threads, each adding 1 to a counter 50 times through read-modify-write: no update lost.
    r.set("py:counter", "0")
    retries = [0]

    def add_one(pipe):
        v = int(pipe.get("py:counter"))
        pipe.multi()
        pipe.set("py:counter", v + 1)

    def worker():
        c = redis.Redis(host=host, port=int(port), socket_timeout=10)
        for _ in range(50):
            c.transaction(add_one, "py:counter")

    ts = [threading.Thread(target=worker) for _ in range(2)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    check("WATCH-guarded increments: %r" % r.get("py:counter"), r.get("py:counter") == b"100")
    # A watched key changed by another connection: WatchError.
    w = r.pipeline()
    w.watch("py:a")
    redis.Redis(host=host, port=int(port)).set("py:a", "changed")
    w.multi()
    w.set("py:a", "mine")
    try:
        w.execute()
        check("WatchError raised", False)
    except redis.WatchError:
        check("WatchError", True)
    check("the watched key kept the other's value", r.get("py:a") == b"changed")
    print("redis_py: %d checks passed" % checks)


if __name__ == "__main__":
    main()
