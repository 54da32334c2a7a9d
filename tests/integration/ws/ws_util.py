"""A small asyncio WebSocket client for the integration tests (RFC 6455: the handshake,
masked client frames, unmasked server frames; no extensions). Written here so the tests
need nothing beyond python3."""

import asyncio
import base64
import os
import struct


class Closed(Exception):
    pass


class Client:
    def __init__(self, reader, writer, head):
        self.reader = reader
        self.writer = writer
        self.head = head

    @classmethod
    async def connect(cls, host, port, path="/", timeout=10.0):
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise Closed(f"handshake refused: {head.decode(errors='replace').splitlines()[0]}")
        return cls(reader, writer, head.decode())

    def send(self, payload, opcode=1):
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n <= 0xFFFF:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.writer.write(head + mask + body)

    async def frame(self, timeout=10.0):
        """The next frame as (opcode, payload bytes); pings are answered and skipped."""
        while True:
            try:
                h = await asyncio.wait_for(self.reader.readexactly(2), timeout)
                n = h[1] & 0x7F
                if n == 126:
                    n = struct.unpack("!H", await asyncio.wait_for(self.reader.readexactly(2), timeout))[0]
                elif n == 127:
                    n = struct.unpack("!Q", await asyncio.wait_for(self.reader.readexactly(8), timeout))[0]
                payload = await asyncio.wait_for(self.reader.readexactly(n), timeout) if n else b""
            except asyncio.IncompleteReadError as e:
                raise Closed("connection closed") from e
            opcode = h[0] & 0x0F
            if opcode == 9:
                self.send(payload, 10)
                continue
            return opcode, payload

    async def text(self, timeout=10.0):
        opcode, payload = await self.frame(timeout)
        if opcode == 8:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            raise Closed(f"close frame {code} {payload[2:].decode(errors='replace')}")
        return payload.decode()

    async def close(self, code=1000):
        try:
            self.send(struct.pack("!H", code), 8)
            await self.writer.drain()
            deadline = asyncio.get_running_loop().time() + 5
            while asyncio.get_running_loop().time() < deadline:
                opcode, _ = await self.frame(5)
                if opcode == 8:
                    break
        except (Closed, ConnectionError, asyncio.TimeoutError):
            pass
        self.writer.close()

    def abort(self):
        self.writer.transport.abort()
