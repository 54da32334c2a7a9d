#!/usr/bin/env bash
# Counted cost of a 64-byte TCP echo round trip (10 connections): userland instructions
# (callgrind) and system calls (strace) per round trip, summed over every process of the
# server, by ../shared/tools/ipm.py. Repeatable on a noisy machine, unlike wall-clock figures.
#
#   scripts/count-round-trip.sh [BUILD_DIR [SERVER...]]   (default build, every server; minutes)
#
# Servers: reference (swactor_test_echo), base_2 (swactor base mode, 2 workers),
# process_1r_2w (process mode, 1 reactor thread, 2 workers) (echo module, raw framing, log_level warning).
# HTTP (keep-alive GET /, ipm.py --proto http; not in the default list): http_base (base mode,
# 1 worker, http_hello module), http_process (process mode, 1 reactor thread, 1 worker),
# nginx (/usr/sbin/nginx or $NGINX, one process, `return 200 "Hello World"`, the reference):
#   scripts/count-round-trip.sh build http_base http_process nginx
# HTTPS (keep-alive GET / over TLS 1.3, scripts/count-tls.py; the same P-256 certificate for
# both): https_base (base mode, 1 worker, http_hello), https_nginx (nginx as above with `ssl`,
# `ssl_session_cache off`). SWACTOR_COUNT_TLS_NEW=1: a new connection (full handshake) and
# one GET per request instead, per connection (SWACTOR_COUNT_TLS_NEW=resume: each new
# connection resumes its client's previous session with a TLS 1.3 ticket):
#   scripts/count-round-trip.sh build https_base https_nginx
# IPM=path/to/ipm.py overrides the tool's path. SWACTOR_COUNT_PROFILE=1 also prints, per
# server, the functions the extra round trips of the large run went to (per-function Ir of
# the large run minus the small run, divided by the extra round trips; SWACTOR_COUNT_PROFILE_ROWS
# rows, default 25).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd)
ipm=${IPM:-$repo/../shared/tools/ipm.py}
swactor=$build/apps/swactor
echo_bin=$build/tests/support/swactor_test_echo

if [ ! -f "$ipm" ]; then
  echo "count-round-trip: $ipm not found (set IPM); skipped"
  exit 0
fi
for tool in valgrind strace python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "count-round-trip: $tool not installed; skipped"
    exit 0
  fi
done
servers=("${@:2}")
[ ${#servers[@]} -gt 0 ] || servers=(reference base_2 process_1r_2w)
for b in "$swactor" "$echo_bin"; do
  # nginx alone needs neither.
  [ -x "$b" ] || [ "${servers[*]}" = nginx ] || { echo "count-round-trip: $b missing (build it first)" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/count-round-trip-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# ipm.py substitutes {port} in the command line only (anywhere in it, so the template's
# placeholder is @PORT@), so the config is written from a template by a shell that then
# becomes the server (exec): SIGTERM to the group reaches it.
echo_listen=$'url = "tcp://127.0.0.1:@PORT@"\nmodule = "echo"\n'
write_template() {  # NAME SERVER_KEYS [LISTEN_KEYS_AND_MODULES]
  printf '[server]\n%slog_level = "warning"\nadmin_socket = "%s/%s-@PORT@.sock"\n\n[[listen]]\n%s' \
    "$2" "$tmp" "$1" "${3:-$echo_listen}" >"$tmp/$1.toml.in"
}
write_template base_2 $'mode = "base"\nworkers = 2\n'
write_template process_1r_2w $'mode = "process"\nworkers = 2\nreactor_threads = 1\n'
http_listen=$'url = "http://127.0.0.1:@PORT@"\nmodule = "hello"\n\n[modules.hello]\ntype = "http_hello"\n'
write_template http_base $'mode = "base"\nworkers = 1\n' "$http_listen"
write_template http_process $'mode = "process"\nworkers = 1\nreactor_threads = 1\n' "$http_listen"
https_listen=$'url = "https://127.0.0.1:@PORT@"\nmodule = "hello"\ntls = { cert = "'"$tmp"$'/tls.pem", key = "'"$tmp"$'/tls.key" }\n\n[modules.hello]\ntype = "http_hello"\n'
write_template https_base $'mode = "base"\nworkers = 1\n' "$https_listen"
if [[ " ${servers[*]} " == *" https_"* ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$tmp/tls.key" \
    -out "$tmp/tls.pem" -days 2 -subj /CN=localhost >/dev/null 2>&1
fi

# nginx as one foreground process (callgrind names its output by the pid at start), every
# file it writes in $tmp/nginx-PORT.
cat >"$tmp/nginx.conf.in" <<'EOF'
daemon off;
master_process off;
worker_processes 1;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  default_type text/plain;
  client_body_temp_path @DIR@/body;
  proxy_temp_path @DIR@/proxy;
  fastcgi_temp_path @DIR@/fastcgi;
  uwsgi_temp_path @DIR@/uwsgi;
  scgi_temp_path @DIR@/scgi;
  server {
    listen 127.0.0.1:@PORT@;
    location / { return 200 "Hello World"; }
  }
}
EOF
sed -e 's|listen 127.0.0.1:@PORT@;|listen 127.0.0.1:@PORT@ ssl;\n    ssl_certificate '"$tmp"'/tls.pem;\n    ssl_certificate_key '"$tmp"'/tls.key;\n    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_session_cache off;|' \
  "$tmp/nginx.conf.in" >"$tmp/nginx-tls.conf.in"
run_nginx() {  # NAME CONF_TEMPLATE PROTO
  local nginx=${NGINX:-/usr/sbin/nginx}
  [ -x "$nginx" ] || { echo "count-round-trip: $nginx missing; nginx skipped"; return 0; }
  # shellcheck disable=SC2016  # expanded by the inner shell
  proto=$3 count "$1" sh -c 'd=$2-$1 && mkdir -p "$d" && sed -e "s/@PORT@/$1/g" -e "s|@DIR@|$d|g" "$3" >"$d/nginx.conf" && exec "$4" -p "$d" -e "$d/error.log" -c "$d/nginx.conf"' \
    sh '{port}' "$tmp/$1" "$2" "$nginx"
}

run_with_config() {  # NAME: ipm.py on swactor with that template
  local in=$tmp/$1.toml.in
  # shellcheck disable=SC2016  # expanded by the inner shell
  count "$1" sh -c 'sed "s/@PORT@/$1/g" "$2" >"$3" && exec "$4" run "$3"' sh '{port}' "$in" "$tmp/$1-{port}.toml" "$swactor"
}

# Per-function instructions per round trip: the large run's callgrind files minus the small
# run's (ipm.py leaves them in its temp dirs, the first callgrind dir being the small run).
profile() {  # NAME IPM_TMPDIR EXTRA_TRIPS
  local small large
  small=$(find "$2" -maxdepth 1 -name 'ipm-*' -newer "$2/.mark" -type d -printf '%T@ %p\n' | sort -n | sed -n 1p | cut -d' ' -f2)
  large=$(find "$2" -maxdepth 1 -name 'ipm-*' -newer "$2/.mark" -type d -printf '%T@ %p\n' | sort -n | sed -n 2p | cut -d' ' -f2)
  python3 - "$small" "$large" "$3" <<'EOF'
import glob, os, re, subprocess, sys
def per_function(d):
    out = {}
    for f in glob.glob(d + "/cg.*"):
        txt = subprocess.run(["callgrind_annotate", "--threshold=100", f], capture_output=True, text=True).stdout
        for line in txt.splitlines():
            m = re.match(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$", line)
            if m and ":" in m.group(2) and not m.group(2).startswith("PROGRAM TOTALS"):
                out[m.group(2)] = out.get(m.group(2), 0) + int(m.group(1).replace(",", ""))
    return out
a, b = per_function(sys.argv[1]), per_function(sys.argv[2])
trips = int(sys.argv[3])
rows = sorted(((b.get(k, 0) - a.get(k, 0)) / trips, k) for k in set(a) | set(b))[::-1]
print(f"  top functions, Ir per round trip (large run minus small run, / {trips}):")
for ir, k in [r for r in rows if abs(r[0]) >= 0.5][:int(os.environ.get("SWACTOR_COUNT_PROFILE_ROWS", "25"))]:
    print(f"  {ir:10.1f}  {k[:150]}")
EOF
}

count() {  # NAME CMD...
  local name=$1
  shift
  echo "### $name: $*"
  local d=$tmp/ipm-$name
  mkdir -p "$d"
  touch "$d/.mark"
  local trips=10000
  if [ "${proto:-tcp}" = https ]; then
    local new=()
    [ "${SWACTOR_COUNT_TLS_NEW:-0}" = 1 ] && new=(--new-connections) && trips=400
    [ "${SWACTOR_COUNT_TLS_NEW:-0}" = resume ] && new=(--resume) && trips=400
    TMPDIR=$d python3 "$repo/scripts/count-tls.py" "${new[@]}" -- "$@"
  else
    TMPDIR=$d python3 "$ipm" --proto "${proto:-tcp}" --syscalls -- "$@"
  fi
  if [ "${SWACTOR_COUNT_PROFILE:-0}" = 1 ] && command -v callgrind_annotate >/dev/null; then
    profile "$name" "$d" "$trips"
  fi
}

for s in "${servers[@]}"; do
  case $s in
    reference) count reference "$echo_bin" --tcp '127.0.0.1:{port}' ;;
    base_2 | process_1r_2w) proto=tcp run_with_config "$s" ;;
    http_base | http_process) proto=http run_with_config "$s" ;;
    https_base) proto=https run_with_config "$s" ;;
    nginx) run_nginx nginx "$tmp/nginx.conf.in" http ;;
    https_nginx) run_nginx https_nginx "$tmp/nginx-tls.conf.in" https ;;
    *) echo "count-round-trip: unknown server $s" >&2; exit 2 ;;
  esac
done
