#!/usr/bin/env bash
# Black-box tests of the swactor CLI: exit codes, one-line errors, check diagnostics,
# and `run` on the default app with a clean stop on SIGTERM / SIGINT.
set -u
bin=$1
src=$2
fail=0; passed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

expect() {  # expect NAME WANT_RC GOT_RC
  if [ "$2" != "$3" ]; then echo "FAIL: $1: exit $3, expected $2"; fail=$((fail+1)); else passed=$((passed+1)); fi
}
contains() {  # contains NAME FILE TEXT
  if grep -qF -- "$3" "$2"; then passed=$((passed+1)); else echo "FAIL: $1: missing '$3' in:"; cat "$2"; fail=$((fail+1)); fi
}

"$bin" version >"$tmp/out" 2>&1; expect "version" 0 $?
contains "version lists CAF" "$tmp/out" "CAF 0.17.6"
contains "version lists asio" "$tmp/out" "asio 1.22.1"
"$bin" modules >"$tmp/out" 2>&1; expect "modules" 0 $?
contains "modules lists ticker" "$tmp/out" "ticker"
"$bin" --help >"$tmp/out" 2>&1; expect "--help" 0 $?
"$bin" run --help >"$tmp/out" 2>&1; expect "run --help" 0 $?
"$bin" --frobnicate >"$tmp/out" 2>&1; expect "unknown flag" 2 $?
[ "$(wc -l <"$tmp/out")" -eq 1 ] && passed=$((passed+1)) || { echo "FAIL: unknown flag: not one line"; fail=$((fail+1)); }
"$bin" check "$tmp/missing.toml" >"$tmp/out" 2>&1; expect "missing file" 2 $?
[ "$(wc -l <"$tmp/out")" -eq 1 ] && passed=$((passed+1)) || { echo "FAIL: missing file: not one line"; fail=$((fail+1)); }

"$bin" check "$src/apps/examples/default.toml" >"$tmp/out" 2>&1; expect "check default app" 0 $?

cat >"$tmp/bad.toml" <<'TOML'
[server]
log_level = "loud"
log_fiel = "x"

[modules.ticker]
interval = "3 parsecs"
mesage = "x"

[modules.other]
type = "nope"
TOML
"$bin" check "$tmp/bad.toml" >"$tmp/out" 2>&1; expect "check bad config" 1 $?
contains "bad enum" "$tmp/out" "bad.toml:2:13: server.log_level: expected one of"
contains "unknown key + hint" "$tmp/out" "bad.toml:3:1: server.log_fiel: unknown key (did you mean \"log_file\"?)"
contains "module option value" "$tmp/out" "bad.toml:6:12: modules.ticker.interval: unknown duration unit"
contains "module unknown key" "$tmp/out" "bad.toml:7:1: modules.ticker.mesage: unknown key"
contains "unknown module type" "$tmp/out" "bad.toml:9:1: modules.other: unknown module type \"nope\""
contains "error count" "$tmp/out" "5 error(s)"

# Directories a listener or module needs must exist: check names the key and line.
cat >"$tmp/dirs.toml" <<TOML
[[listen]]
url = "http://127.0.0.1:1"
module = "files"
upload_tmp_dir = "$tmp/no-such-dir"

[modules.files]
type = "http_static"
root = "$tmp/no-such-root"
TOML
"$bin" check "$tmp/dirs.toml" >"$tmp/out" 2>&1; expect "check missing directories" 1 $?
contains "upload_tmp_dir must exist" "$tmp/out" "dirs.toml:4:18: listen[0].upload_tmp_dir: expected an existing writable directory"
contains "static root must exist" "$tmp/out" "dirs.toml:8:8: modules.files.root: expected an existing directory (the document root)"
mkdir -p "$tmp/no-such-dir" "$tmp/no-such-root"
"$bin" check "$tmp/dirs.toml" >"$tmp/out" 2>&1; expect "check with the directories made" 0 $?

for sig in TERM INT; do
  cat >"$tmp/tick.toml" <<'TOML'
[server]
log_level = "info"
workers = 1
[modules.ticker]
interval = "50ms"
TOML
  "$bin" run "$tmp/tick.toml" >"$tmp/run.out" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do grep -q "tick #2" "$tmp/run.out" && break; sleep 0.05; done
  kill -$sig $pid
  wait $pid; expect "run stops on SIG$sig" 0 $?
  contains "run ticks in a worker" "$tmp/run.out" "ticker tick #2"
  contains "worker lines carry their role" "$tmp/run.out" "[worker#0 pid"
  contains "master lines carry their role" "$tmp/run.out" "[master pid $pid]"
  contains "run logs the signal" "$tmp/run.out" "received SIG$sig"
  contains "run logs stop" "$tmp/run.out" "stopped"
  if pgrep -f "swactor worker .*--config-name $tmp/tick.toml" >/dev/null; then
    echo "FAIL: workers left behind after SIG$sig"; fail=$((fail+1)); else passed=$((passed+1)); fi
done

# The load tester as a module: an echo server and the load against it in one app.
port=$(( 20000 + $$ % 9000 ))
cat >"$tmp/load.toml" <<TOML
[server]
workers = 2
[[listen]]
url = "tcp://127.0.0.1:$port"
module = "echo"
[modules.load]
type = "bench"
url = "tcp://127.0.0.1:$port"
requests = 3000
connections = 10
verify = true
json = "$tmp/load.json"
stop_server = true
TOML
timeout 60 "$bin" run "$tmp/load.toml" >"$tmp/load.out" 2>&1; expect "bench module run stops the server" 0 $?
contains "bench module logs its table" "$tmp/load.out" "requests            3000  ok 3000  errors 0"
contains "bench module writes json" "$tmp/load.json" '"requests": 3000'

echo "$passed passed, $fail failed"
[ $fail -eq 0 ]
