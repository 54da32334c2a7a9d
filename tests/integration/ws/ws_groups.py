"""WebSocket groups against a running swactor (test_websocket_groups.cpp starts it).

  scale   --target H:P --probe H:P --clients N --messages M --workers W
          N ws_chat clients (spread over W workers: their welcome says which) join one
          group through the probe, which broadcasts M messages to it; every client must get
          all M, in order.
  api     --target H:P --probe H:P
          ws_chat clients in two rooms plus a probe control connection: join / leave /
          broadcast to a group from a worker and from a task worker, broadcast to every
          WebSocket, a closed member leaves its groups.
  survive --target H:P --clients N --seconds S [--kill PID] [--reload PID]
          N ws_chat clients in one room keep talking for S seconds; at 1/4 of it worker
          PID is killed with SIGKILL, at 1/2 the master PID gets SIGUSR1 (reload). No
          connection may close, and afterwards each client's message reaches every client
          again (the adopted sessions keep nick and room).
Exit status 0 = passed; failures are printed."""

import argparse
import asyncio
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ws_util import Client, Closed  # noqa: E402


def split(target):
    host, port = target.rsplit(":", 1)
    return host, int(port)


async def join_chat(host, port, path, nick):
    c = await Client.connect(host, port, f"{path}?nick={nick}")
    while True:
        m = json.loads(await c.text())
        if m["type"] == "welcome":
            c.id, c.worker, c.nick = m["id"], m["worker"], m["nick"]
            return c


async def until(c, pred, timeout=20.0):
    """Reads text messages until pred(parsed) is true; returns it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise asyncio.TimeoutError()
        raw = await c.text(left)
        try:
            m = json.loads(raw)
        except ValueError:
            m = {"type": "raw", "text": raw}
        if pred(m):
            return m


async def connect_many(host, port, path, n, prefix):
    clients = []
    for start in range(0, n, 100):
        batch = await asyncio.gather(*(join_chat(host, port, path, f"{prefix}{i}")
                                       for i in range(start, min(n, start + 100))))
        clients.extend(batch)
    return clients


async def scale(args):
    host, port = split(args.target)
    # Each client in a room of its own (no join notices to everyone), all of them in one
    # group joined through the probe, which then broadcasts.
    clients = []
    for start in range(0, args.clients, 100):
        clients.extend(await asyncio.gather(*(join_chat(host, port, f"/chat/r{i}", f"c{i}")
                                              for i in range(start, min(args.clients, start + 100)))))
    workers = {c.worker for c in clients}
    print(f"{len(clients)} clients on workers {sorted(workers)}")
    if len(workers) != args.workers:
        print(f"FAIL: expected clients on {args.workers} workers, got {sorted(workers)}")
        return 1
    ph, pp = split(args.probe)
    probe = await asyncio.open_connection(ph, pp)
    # Pipelined: one reply line per command, in order.
    lines = [f"ws_join load {c.id}" for c in clients] + [f"ws_broadcast load m{k}" for k in range(args.messages)]
    probe[1].write("".join(line + "\n" for line in lines).encode())
    for line in lines:
        r = (await asyncio.wait_for(probe[0].readline(), 30)).decode().rstrip("\n")
        if r != "ok":
            print(f"FAIL: {line}: {r}")
            return 1

    async def collect(c):
        got = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while len(got) < args.messages:
            m = await until(c, lambda m: m["type"] == "raw", deadline - loop.time())
            got.append(m["text"])
        return got

    results = await asyncio.gather(*(collect(c) for c in clients), return_exceptions=True)
    expect = [f"m{k}" for k in range(args.messages)]
    bad = 0
    for c, r in zip(clients, results):
        if isinstance(r, Exception) or r != expect:
            bad += 1
            if bad <= 5:
                print(f"FAIL: client {c.nick} (#{c.id}, worker {c.worker}): "
                      f"{r!r}"[:300])
    print(f"{len(clients) - bad}/{len(clients)} clients got all {args.messages} broadcasts in order")
    for c in clients:
        c.abort()
    probe[1].close()
    return 1 if bad else 0


async def probe_cmd(probe, line):
    r, w = probe
    w.write((line + "\n").encode())
    return (await asyncio.wait_for(r.readline(), 10)).decode().rstrip("\n")


async def expect_raw(c, text, timeout=10.0):
    await until(c, lambda m: m["type"] == "raw" and m["text"] == text, timeout)


async def nothing_more(clients, timeout=0.5):
    """True when none of them gets a non-chat (raw) message within `timeout`."""
    async def one(c):
        try:
            m = await until(c, lambda m: m["type"] == "raw", timeout)
            return m["text"]
        except asyncio.TimeoutError:
            return None
    got = await asyncio.gather(*(one(c) for c in clients))
    return [g for g in got if g is not None]


async def api(args):
    host, port = split(args.target)
    ph, pp = split(args.probe)
    probe = await asyncio.open_connection(ph, pp)
    fails = []

    def check(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            fails.append(what)

    a = await connect_many(host, port, "/chat/red", 4, "red")
    b = await connect_many(host, port, "/chat/blue", 4, "blue")
    # Base mode: the kernel picks the worker that accepts; more red clients until both
    # workers hold some.
    for i in range(16):
        if len({c.worker for c in a + b}) == 2:
            break
        a += await connect_many(host, port, "/chat/red", 1, f"redx{i}_")
    everyone = a + b
    check(len({c.worker for c in everyone}) == 2, "clients on both workers")
    # A group across rooms and workers, joined from the probe's worker.
    members = [a[0], a[3], b[1], b[2]]
    for c in members:
        check(await probe_cmd(probe, f"ws_join team {c.id}") == "ok", f"join #{c.id} (worker {c.worker})")
    check(await probe_cmd(probe, "ws_broadcast team hello team") == "ok", "broadcast to team")
    for c in members:
        await expect_raw(c, "hello team")
    others = [c for c in everyone if c not in members]
    stray = await nothing_more(others)
    check(not stray, f"non-members got nothing ({stray})")
    # Leave, then only the rest hear it.
    check(await probe_cmd(probe, f"ws_leave team {a[3].id}") == "ok", "leave")
    check(await probe_cmd(probe, "ws_broadcast team second") == "ok", "second broadcast")
    for c in [a[0], b[1], b[2]]:
        await expect_raw(c, "second")
    check(not await nothing_more([a[3]] + others), "the one that left got nothing")
    # From a task worker.
    r = await probe_cmd(probe, "task_wait 5000 ws_broadcast:team:from a task")
    check(r == "ok", f"task worker broadcast ({r})")
    for c in [a[0], b[1], b[2]]:
        await expect_raw(c, "from a task")
    r = await probe_cmd(probe, f"task_wait 5000 ws_join:team:{a[1].id}")
    check(r == "ok", f"task worker join ({r})")
    # A join from another process is asynchronous (it travels to the process that holds the
    # connection); the broadcast below comes from the probe's worker on another path.
    await asyncio.sleep(0.5)
    check(await probe_cmd(probe, "ws_broadcast team third") == "ok", "third broadcast")
    for c in [a[0], a[1], b[1], b[2]]:
        await expect_raw(c, "third")
    # Every WebSocket of the server.
    check(await probe_cmd(probe, "ws_broadcast * to all") == "ok", "broadcast to all")
    for c in everyone:
        await expect_raw(c, "to all")
    # A member that closes leaves its groups: the next broadcast reaches the rest, and the
    # server is fine.
    await b[2].close()
    await asyncio.sleep(0.2)
    check(await probe_cmd(probe, "ws_broadcast team after close") == "ok", "broadcast after a member closed")
    for c in [a[0], a[1], b[1]]:
        await expect_raw(c, "after close")
    # Bad names and unknown sessions.
    r = await probe_cmd(probe, "ws_join " + "g" * 300 + f" {a[0].id}")
    check(r.startswith("error:"), f"a 300-byte group name is refused ({r})")
    # Rooms are groups too: a message in red reaches red only.
    a[1].send("red only")
    for c in a:
        await until(c, lambda m: m["type"] == "message" and m["text"] == "red only")
    try:
        await until(b[0], lambda m: m["type"] == "message" and m["text"] == "red only", 0.5)
        check(False, "blue heard red")
    except asyncio.TimeoutError:
        check(True, "rooms are separate")
    for c in everyone:
        c.abort()
    probe[1].close()
    return 1 if fails else 0


async def survive(args):
    host, port = split(args.target)
    clients = await connect_many(host, port, "/chat/stay", args.clients, "s")
    print(f"{len(clients)} clients on workers {sorted({c.worker for c in clients})}")
    closed = []
    stop = asyncio.Event()

    async def talk(c, k):
        n = 0
        while not stop.is_set():
            c.send(f"{c.nick} says {n}")
            n += 1
            await asyncio.sleep(0.05 + 0.01 * (k % 5))

    async def listen(c):
        try:
            while not stop.is_set():
                try:
                    await c.text(0.5)
                except asyncio.TimeoutError:
                    pass
        except (Closed, ConnectionError) as e:
            closed.append((c.nick, str(e)))

    tasks = [asyncio.create_task(talk(c, k)) for k, c in enumerate(clients)]
    tasks += [asyncio.create_task(listen(c)) for c in clients]
    quarter = args.seconds / 4
    await asyncio.sleep(quarter)
    if args.kill:
        os.kill(args.kill, signal.SIGKILL)
        print(f"killed worker {args.kill}")
    await asyncio.sleep(quarter)
    if args.reload:
        os.kill(args.reload, signal.SIGUSR1)
        print(f"reload of {args.reload}")
    await asyncio.sleep(2 * quarter)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    if closed:
        print(f"FAIL: {len(closed)} connection(s) closed: {closed[:5]}")
        return 1
    # After the restarts every client still talks to the room under its own nick.
    for k, c in enumerate(clients):
        c.send(f"final {k}")

    async def all_finals(c):
        seen = set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(seen) < len(clients):
            m = await until(c, lambda m: m["type"] in ("message", "error"), deadline - loop.time())
            if m["type"] == "error":
                raise AssertionError(f"error: {m['text']}")
            if m["text"].startswith("final "):
                k = int(m["text"][6:])
                if m["nick"] != clients[k].nick:
                    raise AssertionError(f"final {k} came as {m['nick']}, not {clients[k].nick}")
                seen.add(k)
        return True

    results = await asyncio.gather(*(all_finals(c) for c in clients), return_exceptions=True)
    bad = [(c.nick, r) for c, r in zip(clients, results) if r is not True]
    for nick, r in bad[:5]:
        print(f"FAIL: {nick}: {r!r}")
    print(f"{len(clients) - len(bad)}/{len(clients)} clients heard everyone after the restarts")
    for c in clients:
        c.abort()
    return 1 if bad else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["scale", "api", "survive"])
    p.add_argument("--target", required=True)
    p.add_argument("--probe")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--messages", type=int, default=100)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--kill", type=int, default=0)
    p.add_argument("--reload", type=int, default=0)
    args = p.parse_args()
    fn = {"scale": scale, "api": api, "survive": survive}[args.mode]
    sys.exit(asyncio.run(asyncio.wait_for(fn(args), 240)))


if __name__ == "__main__":
    main()
