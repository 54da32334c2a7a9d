// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) against an
// echoing WebSocket server, for tests/integration/test_websocket_clients.cpp:
//
//   node browser_ws.js ws://127.0.0.1:PORT/path
//
// Serves a small page from its own HTTP server on 127.0.0.1 (port 0), opens it, and the
// page's script connects to the URL, checks permessage-deflate in ws.extensions, echoes text
// and binary messages from 10 B to 1 MiB and closes with 1000. Prints "ok NAME detail" /
// "not ok NAME detail" lines and "summary: N ok, M not ok"; exits 1 when a check failed, 2
// when the run broke (no browser, a timeout).
'use strict';
const http = require('http');
const { check, with_browser, run } = require('./chromium');

const ws_url = process.argv[2];

// Everything the page does: it reports one result object back.
const page_html = `<!doctype html><meta charset="utf-8"><title>ws test</title><script>
async function run(url) {
  const out = { checks: [] };
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const inbox = [], waiters = [];
  ws.onmessage = (e) => { const w = waiters.shift(); if (w) w(e.data); else inbox.push(e.data); };
  const next = () => new Promise((r) => { const m = inbox.shift(); if (m !== undefined) r(m); else waiters.push(r); });
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('ws error before open')); });
  out.extensions = ws.extensions;
  for (const n of [10, 200, 70 * 1024, 1 << 20]) {
    let text = '';
    const word = 'héllo wörld ';
    while (text.length < n) text += word + text.length + ' ';
    text = text.slice(0, n);
    ws.send(text);
    const t = await next();
    out.checks.push({ name: 'text ' + n, ok: typeof t === 'string' && t === text, detail: (typeof t) + ' ' + t.length });
    const bin = new Uint8Array(n);
    for (let i = 0; i < n; i += 65536) crypto.getRandomValues(bin.subarray(i, Math.min(n, i + 65536)));
    ws.send(bin);
    const b = await next();
    let same = b instanceof ArrayBuffer && b.byteLength === n;
    if (same) { const v = new Uint8Array(b); for (let i = 0; i < n; ++i) if (v[i] !== bin[i]) { same = false; break; } }
    out.checks.push({ name: 'binary ' + n, ok: same, detail: (b instanceof ArrayBuffer ? 'ArrayBuffer ' + b.byteLength : typeof b) });
  }
  const closed = new Promise((r) => { ws.onclose = (e) => r({ code: e.code, reason: e.reason, wasClean: e.wasClean }); });
  ws.close(1000, 'done');
  out.close = await closed;
  return out;
}
</script><p>swactor WebSocket test page</p>`;

async function main() {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page_html);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const page_url = `http://127.0.0.1:${server.address().port}/`;
  try {
    await with_browser(async (context) => {
      const page = await context.newPage();
      await page.goto(page_url, { timeout: 15000 });
      check('page served', (await page.textContent('p')) === 'swactor WebSocket test page');
      const out = await page.evaluate((u) => run(u), ws_url);
      check('extensions', /(^|, *)permessage-deflate($|[;,])/.test(out.extensions), `"${out.extensions}"`);
      for (const c of out.checks) check(c.name, c.ok, c.detail);
      check('close', out.close.code === 1000 && out.close.wasClean === true,
            `code ${out.close.code} wasClean ${out.close.wasClean} reason "${out.close.reason}"`);
      check('message count', out.checks.length === 8, `${out.checks.length} echoes`);
    });
  } finally {
    server.close();
  }
}

run(main);
