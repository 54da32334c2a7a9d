// Headless Chromium against swactor's ws_chat page (tests/integration/test_websocket_clients.cpp):
//
//   node browser_chat.js http://127.0.0.1:PORT/chat
//
// Opens four pages as four users, two rooms (red: ann, bob; blue: cid, dee), each through
// the chat's own HTML page and form. Checks that the pages connected (permessage-deflate
// negotiated), that the users landed on both workers, that what ann types reaches bob and
// not the blue room, and the other way round, and that a leave is announced. Prints "ok ..." /
// "not ok ..." lines and a summary; exits 1 when a check failed, 2 when the run broke.
'use strict';
const { check, with_browser, run } = require('./chromium');

const base = process.argv[2];

// The page keeps its messages in the list; the welcome line names the worker through the
// JSON the page got, which we read from the socket the page exposes (window.chat).
async function open_user(context, room, nick) {
  const page = await context.newPage();
  const frames = [];
  page.on('websocket', (ws) => ws.on('framereceived', (f) => frames.push(String(f.payload))));
  // Through the page's own form: no nick in the URL first.
  await page.goto(base, { timeout: 15000 });
  await page.fill('#nick', nick);
  await page.fill('#room', room);
  await Promise.all([page.waitForNavigation({ timeout: 15000 }), page.click('#join button')]);
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('connected'),
                             null, { timeout: 15000 });
  const status = await page.textContent('#status');
  let welcome = null;
  for (let i = 0; i < 100 && !welcome; ++i) {
    for (const f of frames) {
      try { const m = JSON.parse(f); if (m.type === 'welcome') welcome = m; } catch (e) { /* not JSON */ }
    }
    if (!welcome) await page.waitForTimeout(50);
  }
  return { page, frames, status, welcome, nick };
}

async function log_text(u) { return u.page.$$eval('#log li', (lis) => lis.map((li) => li.textContent)); }

async function wait_line(u, text, ms = 10000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if ((await log_text(u)).some((l) => l.includes(text))) return true;
    await u.page.waitForTimeout(50);
  }
  return false;
}

async function say(u, text) {
  await u.page.fill('#text', text);
  await u.page.click('#say button');
}

async function main() {
  await with_browser(async (context) => {
    const users = [];
    for (const [room, nick] of [['red', 'ann'], ['red', 'bob'], ['blue', 'cid'], ['blue', 'dee']])
      users.push(await open_user(context, room, nick));
    for (const u of users) {
      check(`${u.nick} connected`, /permessage-deflate/.test(u.status), `"${u.status}"`);
      check(`${u.nick} welcomed`, u.welcome && u.welcome.nick === u.nick, JSON.stringify(u.welcome));
    }
    const workers = new Set(users.filter((u) => u.welcome).map((u) => u.welcome.worker));
    // Base mode: the kernel picks the worker that accepts; more red users until both have one.
    for (let i = 0; i < 8 && workers.size < 2; ++i) {
      const extra = await open_user(context, 'red', `extra${i}`);
      if (extra.welcome) workers.add(extra.welcome.worker);
    }
    check('users on both workers', workers.size === 2, [...workers].join(','));
    const [ann, bob, cid, dee] = users;
    check('bob sees ann in the title', (await bob.page.textContent('#where')).includes('#red as bob'));
    await say(ann, 'hello red room');
    check('bob gets ann\'s line', await wait_line(bob, 'hello red room'));
    check('ann gets her own line', await wait_line(ann, 'hello red room'));
    await say(dee, 'hello blue room');
    check('cid gets dee\'s line', await wait_line(cid, 'hello blue room'));
    check('blue did not get red', !(await log_text(cid)).some((l) => l.includes('hello red room')));
    check('red did not get blue', !(await log_text(bob)).some((l) => l.includes('hello blue room')));
    await dee.page.close();
    check('cid sees dee leave', await wait_line(cid, ') left'));
  });
}

run(main);
