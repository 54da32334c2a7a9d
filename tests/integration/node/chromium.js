// What the browser test scripts share: a headless Debian Chromium in a fresh profile, and
// (from checks.js) the "ok NAME" / "not ok NAME" checks and the run with its watchdog.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const { check, run } = require('./checks');

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

module.exports = { check, with_browser, run };
