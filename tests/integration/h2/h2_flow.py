#!/usr/bin/env python3
"""A raw HTTP/2 client that watches request-body flow control (test_http2_flow.cpp).

  h2_flow.py PORT SIZE

Speaks h2c with prior knowledge. Opens two uploads of SIZE bytes (with content-length) on
one connection to http_echo's stream_body route, hashed by the handler (digest=sha256):
  stream 1: /up?delay=4000  (its handler reads nothing for 4 s)
  stream 3: /up             (read when its handler runs: after stream 1's, as a worker runs
                             one handler of a connection at a time)
It sends DATA whenever the server's windows allow, honouring SETTINGS_INITIAL_WINDOW_SIZE
and WINDOW_UPDATE, and prints one JSON line:
  {"sha256": <of the body sent>, "bodies": {"1": text, "3": text},
   "sent1_before_window": bytes sent on stream 1 before the server opened its window,
   "sent3_before_window1": bytes sent on stream 3 by then (the connection kept reading),
   "done3_before_window1": stream 3's response was complete by then,
   "rst": [...], "goaway": <code or null>, "timeout": bool}
"""
import hashlib
import json
import select
import socket
import struct
import sys
import time

from h2wire import (ACK, CONT, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PADDED, PING, PREFACE, PRIORITY,
                    PRIORITY_FLAG, PUSH, RST, SETTINGS, WINDOW, frame, hpack_int, split_frames)  # noqa: F401
PRIO = PRIORITY_FLAG




def literal(name, value):
    """A literal field without indexing, literal name, not Huffman coded."""
    return b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def post_block(path, length):
    # :method POST (3), :scheme http (6), :path and :authority literal with indexed names
    block = bytes([0x83, 0x86])
    block += hpack_int(4, 4) + hpack_int(len(path), 7) + path
    block += hpack_int(1, 4) + hpack_int(9, 7) + b"localhost"
    return block + literal(b"content-length", str(length).encode())


def body_bytes(size):
    pattern = bytes(((i * 131) ^ (i >> 9)) & 0xFF for i in range(65536))
    return (pattern * (size // len(pattern) + 1))[:size]


def run(port, size):
    body = body_bytes(size)
    result = {"sha256": hashlib.sha256(body).hexdigest(), "bodies": {}, "sent1_before_window": None,
              "sent3_before_window1": None,
              "done3_before_window1": False, "rst": [], "goaway": None, "timeout": False}
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # Our receive side: large windows, so responses never wait on us.
    s.sendall(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 1 << 24)) +
              frame(WINDOW, 0, 0, struct.pack(">I", (1 << 24))))
    streams = {1: b"/up?delay=4000&digest=sha256", 3: b"/up?digest=sha256"}
    for sid, path in streams.items():
        s.sendall(frame(HEADERS, END_HEADERS, sid, post_block(path, size)))
    initial = 65535  # until the server's SETTINGS say otherwise
    conn_window = 65535
    window = {sid: initial for sid in streams}
    sent = {sid: 0 for sid in streams}
    opened1 = False
    done = {sid: False for sid in streams}
    responses = {sid: b"" for sid in streams}
    buf = b""
    s.setblocking(False)
    out = b""
    deadline = time.time() + 40
    while not all(done.values()):
        if time.time() > deadline:
            result["timeout"] = True
            break
        # Queue DATA the windows allow (16 KiB frames), stream by stream.
        if len(out) < 65536:
            for sid in streams:
                while sent[sid] < size and window[sid] > 0 and conn_window > 0 and len(out) < 65536:
                    n = min(16384, size - sent[sid], window[sid], conn_window)
                    last = sent[sid] + n == size
                    out += frame(DATA, END_STREAM if last else 0, sid, body[sent[sid]:sent[sid] + n])
                    sent[sid] += n
                    window[sid] -= n
                    conn_window -= n
        r, w, _ = select.select([s], [s] if out else [], [], 0.2)
        if w and out:
            try:
                n = s.send(out)
                out = out[n:]
            except BlockingIOError:
                pass
        if not r:
            continue
        try:
            chunk = s.recv(1 << 20)
        except BlockingIOError:
            continue
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
        frames, buf = split_frames(buf)
        for ftype, flags, sid, payload in frames:
            if ftype == SETTINGS and not flags & ACK:
                for i in range(0, len(payload) - 5, 6):
                    ident, value = struct.unpack(">HI", payload[i:i + 6])
                    if ident == 4:
                        for k in window:
                            window[k] += value - initial
                        initial = value
                out += frame(SETTINGS, ACK, 0)
            elif ftype == WINDOW:
                inc = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
                if sid == 0:
                    conn_window += inc
                elif sid in window:
                    window[sid] += inc
                    if sid == 1 and not opened1:
                        opened1 = True
                        result["sent1_before_window"] = sent[1]
                        result["sent3_before_window1"] = sent[3]
                        result["done3_before_window1"] = done[3]
            elif ftype == DATA and sid in responses:
                data = payload
                if flags & PADDED:
                    data = data[1:len(data) - data[0]]
                responses[sid] += data
                if flags & END_STREAM:
                    done[sid] = True
            elif ftype == HEADERS and sid in done and flags & END_STREAM:
                done[sid] = True
            elif ftype == RST:
                result["rst"].append(sid)
                done[sid] = True
            elif ftype == GOAWAY and len(payload) >= 8:
                result["goaway"] = int.from_bytes(payload[4:8], "big")
            elif ftype == PING and not flags & ACK:
                out += frame(PING, ACK, 0, payload)
    if result["sent1_before_window"] is None:
        result["sent1_before_window"] = sent[1]
    result["bodies"] = {str(k): v.decode("utf-8", "replace") for k, v in responses.items()}
    s.close()
    print(json.dumps(result))


if __name__ == "__main__":
    run(int(sys.argv[1]), int(sys.argv[2]))
