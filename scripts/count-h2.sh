#!/usr/bin/env bash
# Counted cost of an HTTP/2 request: userland instructions per request (callgrind, every
# process of the server) for swactor's http_hello module (base mode with 1 worker, process
# mode with 1 reactor and 1 worker) and for Debian's nghttpd serving the same 11-byte body,
# under the same h2load load (h2c, prior knowledge). Like count-redis.sh: two runs per
# server (N1 and N2 requests), the difference of the summed instruction counts divided by
# N2 - N1, so start-up and shutdown cancel out.
#
#   scripts/count-h2.sh [BUILD_DIR [SERVER...]]   (servers: nghttpd base process; default all)
#
# N1/N2 (environment) override the run lengths (default 20000 / 100000); H2LOAD_ARGS the
# load shape (default "-c 10 -m 10"). Needs valgrind, nghttpd and h2load (nghttp2-server,
# nghttp2-client); without them it prints why and exits 0.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
shift || true
servers=${*:-nghttpd base process}
n1=${N1:-20000}
n2=${N2:-100000}
load=${H2LOAD_ARGS:--c 10 -m 10}
swactor=$build/apps/swactor
for tool in valgrind nghttpd h2load; do
  command -v "$tool" >/dev/null || { echo "count-h2: $tool not installed; skipped"; exit 0; }
done
[ -x "$swactor" ] || { echo "count-h2: $swactor missing (build it first)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/count-h2-XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
mkdir -p "$tmp/www"
printf 'Hello World' >"$tmp/www/hello"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
accepting() { python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1).close()' "$1" 2>/dev/null; }

total() {  # SERVER N: summed Ir of the server's processes for a run of N requests
  local who=$1 n=$2 port pid keys
  port=$(free_port)
  rm -f "$tmp"/cg.*
  case $who in
    nghttpd)
      valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.%p" \
        nghttpd --no-tls -d "$tmp/www" "$port" >"$tmp/server.log" 2>&1 &
      ;;
    base | process)
      if [ "$who" = base ]; then keys='mode = "base"
workers = 1'; else keys='mode = "process"
reactor_threads = 1
workers = 1'; fi
      cat >"$tmp/app.toml" <<T
[server]
$keys
log_level = "warning"
admin_socket = "$tmp/admin.sock"

[[listen]]
url = "http://127.0.0.1:$port"
routes = [ { path = "/", module = "hello" } ]
backlog = 4096

[modules.hello]
type = "http_hello"
T
      valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$tmp/cg.%p" \
        "$swactor" run "$tmp/app.toml" >"$tmp/server.log" 2>&1 &
      ;;
    *) echo "count-h2: unknown server $who (nghttpd, base, process)" >&2; exit 1 ;;
  esac
  pid=$!
  for _ in $(seq 600); do
    accepting "$port" && break
    kill -0 "$pid" 2>/dev/null || { echo "count-h2: $who did not start:" >&2; tail -3 "$tmp/server.log" >&2; exit 1; }
    sleep 0.2
  done
  # shellcheck disable=SC2086
  h2load -t1 $load -n "$n" "http://127.0.0.1:$port/hello" >"$tmp/h2load.txt" 2>&1
  grep -q "$n succeeded" "$tmp/h2load.txt" || { echo "count-h2: $who: h2load failed:" >&2; tail -5 "$tmp/h2load.txt" >&2; kill -TERM "$pid"; exit 1; }
  kill -TERM "$pid"
  wait "$pid" || true
  cat "$tmp"/cg.* | awk '/^summary:/ { s += $2 } END { print s }'
}

for who in $servers; do
  a=$(total "$who" "$n1")
  b=$(total "$who" "$n2")
  echo "$who: $(((b - a) / (n2 - n1))) instructions/request (Ir $a @ $n1, $b @ $n2; h2load $load)"
done
