#!/usr/bin/env python3
"""HTTP/1.1 pipelining read with Python's own parser (http.client), for test_http.cpp.

  http_client_pipeline.py PORT COUNT

Writes COUNT requests (GETs, and every third a POST with a body) in one send on one
connection, then parses the responses one after the other with http.client.HTTPResponse
over one buffered reader, so bytes one response's parser read ahead stay for the next.
Prints one JSON line: {"statuses": [...], "targets": [...], "bodies_ok": bool, "reused": bool}
("reused": a last request on the same connection after the batch was answered too).
"""
import http.client
import json
import socket
import sys


class _KeepOpen:
    """The connection's reader, which a response's parser may not close when it is done."""

    def __init__(self, reader):
        self._reader = reader

    def __getattr__(self, name):
        return getattr(self._reader, name)

    def close(self):
        pass


class _Shared:
    """A stand-in socket whose makefile() is always the same buffered reader."""

    def __init__(self, reader):
        self._reader = _KeepOpen(reader)

    def makefile(self, *args, **kwargs):
        return self._reader


def request(i):
    target = "/pipe/%d" % i
    if i % 3 == 1:
        body = ("body #%d" % i).encode()
        return (b"POST " + target.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body), target, body.decode()
    return b"GET " + target.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n", target, ""


def read_one(shared, method):
    r = http.client.HTTPResponse(shared, method=method)
    r.begin()
    data = r.read()
    return r.status, json.loads(data)


def main():
    port, count = int(sys.argv[1]), int(sys.argv[2])
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    batch = [request(i) for i in range(count)]
    s.sendall(b"".join(b[0] for b in batch))
    shared = _Shared(s.makefile("rb"))
    out = {"statuses": [], "targets": [], "bodies_ok": True, "reused": False}
    for wire, target, body in batch:
        status, j = read_one(shared, "POST" if body else "GET")
        out["statuses"].append(status)
        out["targets"].append(j.get("target"))
        out["bodies_ok"] = out["bodies_ok"] and j.get("body") == body
    s.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
    status, j = read_one(shared, "GET")
    out["reused"] = status == 200 and j.get("target") == "/after"
    s.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
