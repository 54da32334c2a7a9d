#!/usr/bin/env python3
"""A small HTTP/2 client for the integration tests (test_http2.cpp): many GETs as streams of
one connection, which curl 7.88 cannot do reliably (its pending transfers fail with "Error in
the HTTP2 framing layer" on a prior-knowledge connection).

  h2_get.py PORT OUT_DIR PATH...

Speaks h2c with prior knowledge over one socket, opens a stream per PATH at once (stream
windows of 2^31-1, so the server's own output limit is what bounds it), writes stream i's
body to OUT_DIR/i, and reads until every stream ended or was reset, the server closed, or
60 s passed. Prints one JSON line:
  {"streams": [{"path", "status": 200 or null, "reset": error code or null, "complete",
   "bytes", "finished": 0-based rank of its end (END_STREAM or RST_STREAM) among the
   streams, or null}], "goaway": error code or null, "closed": bool}
"""
import json
import os
import socket
import struct
import sys
import time

from h2wire import (ACK, CONT, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PADDED, PING, PREFACE, PRIORITY,
                    PRIORITY_FLAG, PUSH, RST, SETTINGS, WINDOW, frame, hpack_int)  # noqa: F401
STATIC_STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}




def literal(name_index, value):
    # Literal header field without indexing, indexed name, raw (not Huffman) value.
    v = value.encode()
    return hpack_int(name_index, 4) + hpack_int(len(v), 7) + v


def main():
    port, out_dir, paths = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    authority = "127.0.0.1:%d" % port
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(1.0)
    out = PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 0x7FFFFFFF) + struct.pack(">HI", 2, 0))
    out += frame(WINDOW, 0, 0, struct.pack(">I", 0x7FFFFFFF - 65535))
    streams = {}
    for i, path in enumerate(paths):
        sid = 1 + 2 * i
        block = b"\x82\x86" + literal(4, path) + literal(1, authority)  # GET, http, :path, :authority
        out += frame(HEADERS, END_STREAM | END_HEADERS, sid, block)
        streams[sid] = {"path": path, "status": None, "reset": None, "complete": False, "bytes": 0,
                        "finished": None, "file": open(os.path.join(out_dir, str(i)), "wb")}
    sock.sendall(out)
    buf, goaway, closed = b"", None, False
    ended = 0

    def finish(s):
        nonlocal ended
        if s["finished"] is None:
            s["finished"] = ended
            ended += 1

    deadline = time.time() + 60
    while time.time() < deadline and not all(s["complete"] or s["reset"] is not None for s in streams.values()):
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            continue
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        buf += chunk
        while len(buf) >= 9:
            length = int.from_bytes(buf[0:3], "big")
            if len(buf) < 9 + length:
                break
            ftype, flags = buf[3], buf[4]
            sid = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            payload = buf[9:9 + length]
            buf = buf[9 + length:]
            s = streams.get(sid)
            if ftype == DATA and s:
                if flags & PADDED:
                    payload = payload[1:len(payload) - payload[0]]
                s["file"].write(payload)
                s["bytes"] += len(payload)
                if flags & END_STREAM:
                    s["complete"] = True
                    finish(s)
            elif ftype == HEADERS and s:
                block = payload
                if flags & PADDED:
                    block = block[1:len(block) - block[0]]
                if flags & PRIORITY_FLAG:
                    block = block[5:]
                if s["status"] is None and block and block[0] & 0x80:
                    s["status"] = STATIC_STATUS.get(block[0] & 0x7F)
                if flags & END_STREAM:
                    s["complete"] = True
                    finish(s)
            elif ftype == RST and s:
                s["reset"] = int.from_bytes(payload[0:4], "big")
                finish(s)
            elif ftype == SETTINGS and not flags & ACK:
                sock.sendall(frame(SETTINGS, ACK, 0))
            elif ftype == PING and not flags & ACK:
                sock.sendall(frame(PING, ACK, 0, payload))
            elif ftype == GOAWAY:
                goaway = int.from_bytes(payload[4:8], "big")
    result = []
    for sid in sorted(streams):
        s = streams[sid]
        s["file"].close()
        del s["file"]
        result.append(s)
    print(json.dumps({"streams": result, "goaway": goaway, "closed": closed}))


if __name__ == "__main__":
    main()
