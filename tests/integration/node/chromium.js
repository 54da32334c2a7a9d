// What the browser test scripts share: the "ok NAME" / "not ok NAME" checks, a headless
// Debian Chromium in a fresh profile, and the run with its watchdog and exit codes (0 all
// ok, 1 a check failed, 2 the run broke).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

let ok = 0, failed = 0;
function check(name, cond, detail = '') {
  if (cond) ++ok; else ++failed;
  console.log(`${cond ? 'ok' : 'not ok'} ${name}${detail ? ' ' + detail : ''}`);
}

// Runs body(context) with a browser context and removes the profile afterwards. Without the
// background-networking flags Chromium keeps trying to reach its services, which hangs on a
// closed network. `extra_args` go to Chromium as well (a test CA's key to trust).
async function with_browser(body, extra_args = []) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'swactor-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      timeout: 30000,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync',
             ...extra_args],
    });
    await body(context);
  } finally {
    if (context) await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

// Runs main() under a 90 s watchdog, prints the summary and exits.
function run(main) {
  const watchdog = setTimeout(() => {
    console.log('not ok watchdog: no result within 90 s');
    process.exit(2);
  }, 90000);
  main().then(() => {
    clearTimeout(watchdog);
    console.log(`summary: ${ok} ok, ${failed} not ok`);
    process.exit(failed ? 1 : 0);
  }, (err) => {
    console.log(`not ok run: ${err && err.stack ? err.stack : err}`);
    process.exit(2);
  });
}

module.exports = { check, with_browser, run };
