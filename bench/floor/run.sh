#!/usr/bin/env bash
# The floors the bench's small-file figures are read against (README, Performance): a 4 KiB GET in
# one Node process (from memory; doing the file work itself) under wrk -t2 -c16, CPU per request
# from /proc; and the kernel's CPU for one atomic 4 KiB replace, Apache's way and privdav's (with
# and without fdatasync); then privdav's own DAV handler without the daemon (bench/floor/dav-floor.ts)
# over storage in its process and over a real worker, for GET 4 KiB x16, PUT 4 KiB x8 and PROPFIND
# Depth 1 over 1,000 entries x4, CPU per request summed over the server and its worker. Needs node,
# wrk, gcc, root (it makes a user, privdav-floor, and removes it) and `npm run build`.
# Usage: bash bench/floor/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
server="$here/../../dist/bench/floor/http-floor.js"
# On the disk the homes are on (/tmp may be a tmpfs, where fdatasync costs nothing).
work="$(mktemp -d /var/tmp/privdav-floor-XXXXXX)"
floor_user=privdav-floor
cleanup() {
  pkill -u "$floor_user" 2> /dev/null || true
  userdel -r "$floor_user" 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
head -c 4096 /dev/urandom > "$work/file"
port=47099
ticks_of() { # CPU ticks of a process and its children (dav-floor's worker)
  local total=0 p
  for p in "$1" $(pgrep -P "$1"); do
    [ -r "/proc/$p/stat" ] && total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
  done
  echo "$total"
}
wait_for() { # url: until the server at $pid answers
  for _ in $(seq 50); do curl -s -o /dev/null "$1" && break; sleep 0.1; done
}
measure() { # label url connections [lua]: req/s and CPU per request of $pid (and children)
  local before after out requests script=()
  [ -n "${4:-}" ] && script=(-s "$4")
  wrk -t2 -c"$3" -d2s "${script[@]}" "$2" > /dev/null
  before=$(ticks_of "$pid")
  out=$(wrk -t2 -c"$3" -d5s "${script[@]}" "$2")
  after=$(ticks_of "$pid")
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "$1: $(echo "$out" | awk '/Requests\/sec/ {print $2}') req/s," \
    "$(( (after - before) * 1000000 / $(getconf CLK_TCK) / requests )) µs CPU per request" \
    "$(echo "$out" | grep -q 'Non-2xx' && echo '(some answers not 2xx!)')"
}
for mode in memory file; do
  node "$server" "$mode" "$port" "$work/file" & pid=$!
  wait_for "http://127.0.0.1:$port/"
  measure "node:http, 4 KiB from $mode" "http://127.0.0.1:$port/" 16
  kill "$pid"; wait "$pid" 2> /dev/null || true
done
gcc -O2 -o "$work/replace-floor" "$here/replace-floor.c"
mkdir "$work/replace"
for mode in 2 0 1; do "$work/replace-floor" "$work/replace" "$mode"; done

# privdav's DAV handler without the daemon: the steps from the floors above to the daemon's figures.
dav_floor="$here/../../dist/bench/floor/dav-floor.js"
userdel -r "$floor_user" 2> /dev/null || true
useradd -m "$floor_user"
home="$(getent passwd "$floor_user" | cut -d: -f6)"
head -c 4096 /dev/urandom > "$home/file"
mkdir "$home/put" "$home/list"
for i in $(seq 0 63); do head -c 4096 /dev/zero > "$home/put/f-$i.bin"; done
for i in $(seq 1000); do head -c 4096 /dev/zero > "$home/list/f$i"; done
chown -R "$floor_user:" "$home"
cat > "$work/put.lua" << 'LUA'
wrk.method = "PUT"
wrk.body = string.rep("p", 4096)
local n = 0
request = function()
  n = (n + 1) % 64
  return wrk.format(nil, "/put/f-" .. n .. ".bin")
end
LUA
cat > "$work/propfind.lua" << 'LUA'
wrk.method = "PROPFIND"
wrk.headers["Depth"] = "1"
LUA
mkdir "$work/state"
for mode in local privsep; do
  node "$dav_floor" "$mode" "$port" "$floor_user" true "$work/state" & pid=$!
  wait_for "http://127.0.0.1:$port/file"
  measure "DAV handler over $mode storage, GET 4 KiB x16" "http://127.0.0.1:$port/file" 16
  measure "DAV handler over $mode storage, PUT 4 KiB x8 (fdatasync)" "http://127.0.0.1:$port/" 8 "$work/put.lua"
  measure "DAV handler over $mode storage, PROPFIND 1,000 x4" "http://127.0.0.1:$port/list/" 4 "$work/propfind.lua"
  kill "$pid"; wait "$pid" 2> /dev/null || true
done
