// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) loading pages
// from http_static over https://, for tests/integration/test_http_static_browser.cpp:
//
//   node browser_static.js https://127.0.0.1:PORT/ CA_SPKI_SHA256_BASE64 CLIP_SIZE [PROTOCOL]
//
// The server's certificate is issued by a test CA and the listener sends the chain (leaf,
// then the CA); Chromium trusts the CA's key through --ignore-certificate-errors-spki-list
// (a fresh profile has no CA store to add it to; the flag matches any certificate of the
// presented chain, so a certificate from another CA is still refused). The
// document root holds index.html (with <p id="marker">swactor static</p>) and clip.mp4,
// CLIP_SIZE bytes where byte i is i % 251. Checks: the page loads (200, over TLS), a
// fetch() with `Range: bytes=100-199` gets 206 with exactly those bytes, and a <video>
// element's own request (Chromium asks media with `Range: bytes=0-`) is answered 206; with
// PROTOCOL ("h2", "http/1.1"), the page and the fetch went over that protocol (ALPN).
// Prints "ok NAME detail" / "not ok NAME detail" lines and "summary: N ok, M not ok"; exits
// 1 when a check failed, 2 when the run broke.
'use strict';
const { check, with_browser, run } = require('./chromium');

const base = process.argv[2];
const ca_spki = process.argv[3];
const clip_size = Number(process.argv[4]);
const want_protocol = process.argv[5] || '';

run(async () => {
  await with_browser(async (context) => {
    const page = await context.newPage();
    const media_ranges = [], media_status = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/clip.mp4') && r.resourceType() === 'media') media_ranges.push(r.headers()['range'] || '(none)');
    });
    page.on('response', (r) => {
      if (r.url().endsWith('/clip.mp4') && r.request().resourceType() === 'media') media_status.push(r.status());
    });

    const resp = await page.goto(base + 'index.html', { waitUntil: 'load', timeout: 20000 });
    check('page over https', resp !== null && resp.status() === 200, `status ${resp && resp.status()}`);
    const tls = resp ? await resp.securityDetails() : null;
    check('TLS session', tls !== null && /^TLS 1\.[23]$/.test(tls.protocol), tls ? tls.protocol : 'none');
    const marker = await page.evaluate(() => (document.getElementById('marker') || {}).textContent);
    check('page content', marker === 'swactor static', String(marker));

    const r = await page.evaluate(async () => {
      const res = await fetch('clip.mp4', { headers: { Range: 'bytes=100-199' } });
      const buf = new Uint8Array(await res.arrayBuffer());
      let same = buf.length === 100;
      for (let i = 0; same && i < 100; ++i) same = buf[i] === (100 + i) % 251;
      return { status: res.status, range: res.headers.get('content-range'), len: buf.length, same };
    });
    check('fetch Range: bytes=100-199 -> 206', r.status === 206, `status ${r.status}`);
    check('Content-Range', r.range === `bytes 100-199/${clip_size}`, String(r.range));
    check('ranged bytes', r.same, `${r.len} bytes`);
    if (want_protocol) {
      const protos = await page.evaluate(() => performance.getEntries()
        .filter((e) => e.nextHopProtocol !== undefined).map((e) => e.nextHopProtocol));
      check('protocol ' + want_protocol, protos.length >= 2 && protos.every((p) => p === want_protocol), JSON.stringify(protos));
    }

    await page.evaluate(() => {
      const v = document.createElement('video');
      v.preload = 'auto';
      v.src = 'clip.mp4';
      document.body.appendChild(v);
      v.load();
    });
    for (let i = 0; i < 100 && media_status.length === 0; ++i) await new Promise((res) => setTimeout(res, 100));
    check('video element asks for a range', media_ranges.some((h) => /^bytes=\d+-\d*$/.test(h)), JSON.stringify(media_ranges));
    check('video request answered 206', media_status.includes(206), JSON.stringify(media_status));
  }, ['--ignore-certificate-errors-spki-list=' + ca_spki]);
});
