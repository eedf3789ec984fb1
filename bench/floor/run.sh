#!/usr/bin/env bash
# The floors the bench's small-file figures are read against (README, Performance): a 4 KiB GET in
# one Node process (from memory; doing the file work itself) under wrk -t2 -c16, CPU per request
# from /proc; and the kernel's CPU for one atomic 4 KiB replace, Apache's way and privdav's (with
# and without fdatasync). Needs node, wrk, gcc and `npm run build`. Usage: bash bench/floor/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
server="$here/../../dist/bench/floor/http-floor.js"
# On the disk the homes are on (/tmp may be a tmpfs, where fdatasync costs nothing).
work="$(mktemp -d /var/tmp/privdav-floor-XXXXXX)"
trap 'rm -rf "$work"' EXIT
head -c 4096 /dev/urandom > "$work/file"
port=47099
for mode in memory file; do
  node "$server" "$mode" "$port" "$work/file" & pid=$!
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
  wrk -t2 -c16 -d2s "http://127.0.0.1:$port/" > /dev/null
  before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  out=$(wrk -t2 -c16 -d5s "http://127.0.0.1:$port/")
  after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  ticks=$(getconf CLK_TCK)
  echo "node:http, 4 KiB from $mode: $(echo "$out" | awk '/Requests\/sec/ {print $2}') req/s," \
    "$(( (after - before) * 1000000 / ticks / requests )) µs CPU per request"
  kill "$pid"; wait "$pid" 2> /dev/null || true
done
gcc -O2 -o "$work/replace-floor" "$here/replace-floor.c"
mkdir "$work/replace"
for mode in 2 0 1; do "$work/replace-floor" "$work/replace" "$mode"; done
