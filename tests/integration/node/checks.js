// What the Node client scripts share: the "ok NAME" / "not ok NAME" checks and the run
// with its watchdog and exit codes (0 all ok, 1 a check failed, 2 the run broke). Needs no
// npm package.
'use strict';

let ok = 0, failed = 0;
function check(name, cond, detail = '') {
  if (cond) ++ok; else ++failed;
  console.log(`${cond ? 'ok' : 'not ok'} ${name}${detail ? ' ' + detail : ''}`);
}

// Runs main() under a watchdog of `seconds` (a stuck server must not hang the test),
// prints the summary and exits.
function run(main, seconds = 90) {
  const watchdog = setTimeout(() => {
    console.log(`not ok watchdog: no result within ${seconds} s`);
    process.exit(2);
  }, seconds * 1000);
  main().then(() => {
    clearTimeout(watchdog);
    console.log(`summary: ${ok} ok, ${failed} not ok`);
    process.exit(failed ? 1 : 0);
  }, (err) => {
    console.log(`not ok run: ${err && err.stack ? err.stack : err}`);
    process.exit(2);
  });
}

module.exports = { check, run };
