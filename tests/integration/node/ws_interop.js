// Node `ws` 8 against an echoing WebSocket server (swactor's ws_echo), for
// tests/integration/test_websocket_clients.cpp:
//
//   node ws_interop.js ws://127.0.0.1:PORT/path --deflate on|off --expect-deflate yes|no
//
// --deflate: whether the client offers permessage-deflate; --expect-deflate: whether the
// server must accept it (ws.extensions). Prints one line per check, "ok NAME detail" or
// "not ok NAME detail", then "summary: N ok, M not ok"; exits 1 when a check failed and 2
// when the run itself broke (no connection, a timeout). Payloads are compared by content.
'use strict';
const crypto = require('crypto');
const WebSocket = require('ws');

const url = process.argv[2];
const opt = (name, dflt) => {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const offer = opt('deflate', 'on') === 'on';
const expect_deflate = opt('expect-deflate', offer ? 'yes' : 'no') === 'yes';

const { check, run } = require('./checks');

// Compressible text (so deflate has work) that still differs per size and index.
function text_of(n, seed) {
  const words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta', 'ünïcødé', '€'];
  const parts = [];
  let bytes = 0;
  for (let i = seed; bytes < n; ++i) {
    const w = words[(i * 7) % words.length] + ' ' + i + ' ';
    parts.push(w);
    bytes += Buffer.byteLength(w);
  }
  // Cut at n bytes without splitting a UTF-8 sequence: pad with ASCII instead.
  const b = Buffer.from(parts.join(''));
  let end = n;
  while (end > 0 && (b[end] & 0xc0) === 0x80) --end;
  return b.subarray(0, end).toString() + 'x'.repeat(n - end);
}

// Messages come back in order (one connection, an echo): a queue of waiters.
function receiver(ws) {
  const queue = [], waiters = [];
  ws.on('message', (data, is_binary) => {
    const m = { data: Buffer.isBuffer(data) ? data : Buffer.concat(data), is_binary };
    const w = waiters.shift();
    if (w) w(m); else queue.push(m);
  });
  return () => new Promise((resolve) => {
    const m = queue.shift();
    if (m) resolve(m); else waiters.push(resolve);
  });
}

async function main() {
  const ws = new WebSocket(url, { perMessageDeflate: offer ? { threshold: 0 } : false, maxPayload: 8 << 20 });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const next = receiver(ws);
  const ext = ws.extensions;
  check('extensions', expect_deflate ? ext === 'permessage-deflate' : ext === '', `"${ext}"`);

  // Frame lengths: 200 B takes the 16-bit form, 70 KiB and 1 MiB the 64-bit one (random
  // binary payloads keep their size under deflate; text shrinks).
  const sizes = [200, 70 * 1024, 1 << 20];
  for (const n of sizes) {
    const text = text_of(n, n);
    const read_before = ws._socket.bytesRead;
    ws.send(text);
    const m = await next();
    if (n === 1 << 20) {
      // The server compressed its reply when deflate was negotiated (the bytes on the wire
      // are a fraction of the text), and sent it plain otherwise.
      const wire = ws._socket.bytesRead - read_before;
      check('server compression', expect_deflate ? wire < n / 4 : wire >= n, `${wire} B on the wire for ${n} B`);
    }
    check(`text ${n}`, !m.is_binary && m.data.length === Buffer.byteLength(text) && m.data.toString() === text,
          `got ${m.data.length} B binary=${m.is_binary}`);
    const bin = crypto.randomBytes(n);
    ws.send(bin);
    const b = await next();
    check(`binary ${n}`, b.is_binary && b.data.equals(bin), `got ${b.data.length} B binary=${b.is_binary}`);
  }

  // Fragmented messages: three frames each (fin false, false, true); the echo is one message.
  for (const binary of [false, true]) {
    const parts = binary ? [crypto.randomBytes(1000), crypto.randomBytes(70000), crypto.randomBytes(5)]
                         : [text_of(1000, 1), text_of(70000, 2), 'end'];
    parts.forEach((p, i) => ws.send(p, { binary, fin: i === parts.length - 1 }));
    const m = await next();
    const want = Buffer.concat(parts.map((p) => Buffer.from(p)));
    check(`fragmented ${binary ? 'binary' : 'text'}`, m.is_binary === binary && m.data.equals(want),
          `3 frames, ${want.length} B, got ${m.data.length} B`);
  }

  // Ping with a payload: the pong carries it back.
  const ping_payload = Buffer.from('are you there ' + Date.now());
  const pong = new Promise((resolve) => ws.once('pong', resolve));
  ws.ping(ping_payload);
  const got = await pong;
  check('ping/pong', got.equals(ping_payload), `"${got.toString()}"`);

  // Many small messages in flight at once come back complete and in order.
  const count = 200;
  for (let i = 0; i < count; ++i) ws.send(`msg ${i}`);
  let in_order = true;
  for (let i = 0; i < count; ++i) {
    const m = await next();
    if (m.data.toString() !== `msg ${i}`) in_order = false;
  }
  check('200 pipelined messages in order', in_order);

  // Close with a code and a reason: the server answers with the same code, then ends the
  // TCP connection; both close frames went (a clean close).
  const closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason })));
  ws.close(4000, 'bye from node');
  const c = await closed;
  check('close', c.code === 4000 && ws._closeFrameReceived && ws._closeFrameSent,
        `code ${c.code} reason "${c.reason.toString()}"`);
  check('socket closed', ws.readyState === WebSocket.CLOSED);
}

// A whole run has 60 s.
run(main, 60);
