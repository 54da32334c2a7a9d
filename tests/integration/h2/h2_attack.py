#!/usr/bin/env python3
"""Raw HTTP/2 attack clients for the integration tests (test_http2.cpp).

  h2_attack.py PORT ATTACK

Speaks h2c with prior knowledge over a plain socket, writes the attack's frames, then
reads what the server answers until it closes or 10 s pass. Prints one JSON line:
  {"goaway": <error code of the server's GOAWAY or null>, "rst": [stream ids reset],
   "closed": <server closed the connection>, "sent_all": <every frame was written>}
Attacks: rapid_reset, continuation, hpack_bomb, ping_flood, settings_flood, empty_data,
zero_window (a 100 MiB response stalled on a zero window: the server should hold no more
than its output limit and reset the stream), window_overrun (8 MiB of request body sent
regardless of the server's window, to a handler that does not read yet: FLOW_CONTROL_ERROR),
stalled_body (a POST whose body never comes: once the server resets the stream the client
stays connected and silent for 3 s, so the server's side must act without new input),
http1_request (an HTTP/1.1 request instead of the preface, for an h2c_only listener; the
result then also says whether the answer began with "HTTP/").
"""
import json
import socket
import struct
import sys
import time

from h2wire import (ACK, CONT, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PADDED, PING, PREFACE, PRIORITY,
                    PRIORITY_FLAG, PUSH, RST, SETTINGS, WINDOW, frame, hpack_int, split_frames)  # noqa: F401




def literal(name, value, indexing=False):
    """A literal field with a literal name, not Huffman coded."""
    first = 0x40 if indexing else 0x00
    return (bytes([first]) + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value)


def request_block(method=b"GET", path=b"/", length=None):
    # :method GET (2) / POST (3), :scheme http (6), :path (literal, name index 4), :authority
    block = bytes([0x82 if method == b"GET" else 0x83, 0x86])
    block += hpack_int(4, 4) + hpack_int(len(path), 7) + path
    block += hpack_int(1, 4) + hpack_int(9, 7) + b"localhost"
    if length is not None:
        block += literal(b"content-length", str(length).encode())
    return block


def run(port, attack):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = [PREFACE]
    settings = b""
    if attack == "zero_window":
        settings = struct.pack(">HI", 4, 0)  # SETTINGS_INITIAL_WINDOW_SIZE = 0
    out.append(frame(SETTINGS, 0, 0, settings))
    if attack == "http1_request":
        out = [b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"]
    batches = []
    if attack == "rapid_reset":
        sid = 1
        for _ in range(40):
            chunk = []
            for _ in range(500):
                chunk.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, request_block()))
                chunk.append(frame(RST, 0, sid, struct.pack(">I", 8)))  # CANCEL
                sid += 2
            batches.append(b"".join(chunk))
    elif attack == "continuation":
        batches.append(frame(HEADERS, 0, 1, request_block()))
        piece = literal(b"x-c", b"v")
        for _ in range(20):
            batches.append(b"".join(frame(CONT, 0, 1, piece) for _ in range(500)))
    elif attack == "hpack_bomb":
        # One 4000-byte entry in the dynamic table, then 2000 references to it: 8 MB of
        # header list from about 6 KB on the wire.
        big = literal(b"x-bomb", b"a" * 4000, indexing=True)
        block = request_block() + big + bytes([0x80 | 62]) * 2000
        # split over CONTINUATION frames of 16 KiB at most
        first, rest = block[:16384], block[16384:]
        frames = [frame(HEADERS, END_STREAM | (0 if rest else END_HEADERS), 1, first)]
        while rest:
            part, rest = rest[:16384], rest[16384:]
            frames.append(frame(CONT, 0 if rest else END_HEADERS, 1, part))
        batches.append(b"".join(frames))
        # then a normal request on the same connection: is the connection still usable?
        batches.append(frame(HEADERS, END_HEADERS | END_STREAM, 3, request_block()))
    elif attack == "ping_flood":
        for _ in range(20):
            batches.append(b"".join(frame(PING, 0, 0, b"12345678") for _ in range(5000)))
    elif attack == "settings_flood":
        for _ in range(20):
            batches.append(b"".join(frame(SETTINGS, 0, 0) for _ in range(5000)))
    elif attack == "empty_data":
        batches.append(frame(HEADERS, END_HEADERS, 1, request_block(b"POST", b"/up")))
        for _ in range(20):
            batches.append(b"".join(frame(DATA, 0, 1) for _ in range(5000)))
    elif attack == "zero_window":
        batches.append(frame(HEADERS, END_HEADERS | END_STREAM, 1, request_block(b"GET", b"/?chunks=1600&size=65536")))
    elif attack == "stalled_body":
        # Announced larger than body_chunk_size, so the request reaches a handler at once.
        batches.append(frame(HEADERS, END_HEADERS, 1, request_block(b"POST", b"/up", 1 << 20)))
    elif attack == "window_overrun":
        size = 8 << 20
        batches.append(frame(HEADERS, END_HEADERS, 1, request_block(b"POST", b"/up?delay=5000&digest=sha256", size)))
        piece = b"o" * 16384
        for _ in range(size // (16384 * 32)):
            batches.append(b"".join(frame(DATA, 0, 1, piece) for _ in range(32)))
    elif attack != "http1_request":
        raise SystemExit("unknown attack " + attack)

    result = {"goaway": None, "rst": [], "closed": False, "sent_all": True}
    try:
        s.sendall(b"".join(out))
        for b in batches:
            s.sendall(b)
    except OSError:
        result["sent_all"] = False

    buf = b""
    deadline = time.time() + 10
    s.settimeout(0.5)
    while time.time() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            if result["goaway"] is not None or (attack in ("zero_window", "hpack_bomb", "window_overrun") and result["rst"]):
                break
            continue
        except OSError:
            result["closed"] = True
            break
        if not chunk:
            result["closed"] = True
            break
        if "http1" not in result:
            result["http1"] = chunk.startswith(b"HTTP/")
        buf += chunk
        frames, buf = split_frames(buf)
        for ftype, flags, sid, payload in frames:
            if ftype == GOAWAY and len(payload) >= 8:
                result["goaway"] = int.from_bytes(payload[4:8], "big")
            elif ftype == RST:
                result["rst"].append(sid)
            elif ftype == SETTINGS and not flags & ACK and attack in ("zero_window", "stalled_body"):
                s.sendall(frame(SETTINGS, ACK, 0))
        if attack == "stalled_body" and result["rst"]:
            time.sleep(3)  # connected and silent
            break
    s.close()
    print(json.dumps(result))


if __name__ == "__main__":
    run(int(sys.argv[1]), sys.argv[2])
