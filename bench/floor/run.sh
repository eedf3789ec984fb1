#!/usr/bin/env bash
# The floors the bench's small-file figures are read against (README, Performance), each measured
# with wrk -t2 (5 s after 2 s unmeasured), CPU per request from /proc summed over the server and all
# its descendants, and Apache mod_dav_fs (bench/floor/apache-floor.ts) beside them in the same run:
#  - a 4 KiB GET in one Node process, from memory and doing the file work itself;
#  - the invariants' least cost on Node (bench/floor/chain-floor.ts): node:http plus a process of
#    the user that opens the file and passes the descriptor back (GET 4 KiB x16), or replaces the
#    file with the body it was sent, fdatasync included (PUT 4 KiB x8);
#  - the kernel's CPU for one atomic 4 KiB replace, Apache's way and privdav's (with and without
#    fdatasync);
#  - privdav's own DAV handler without the daemon (bench/floor/dav-floor.ts) over storage in its
#    process and over a real worker, for GET 4 KiB x16, PUT 4 KiB x8 and PROPFIND Depth 1 over
#    1,000 entries x4.
# ROUNDS=N (default 2) repeats the servers' measures, in the same order each round. Needs node,
# wrk, gcc, apache2, root (it makes a user, privdav-floor, and removes it) and `npm run build`.
# Usage: bash bench/floor/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dist="$here/../../dist/bench/floor"
rounds="${ROUNDS:-2}"
# On the disk the homes are on (/tmp may be a tmpfs, where fdatasync costs nothing).
work="$(mktemp -d /var/tmp/privdav-floor-XXXXXX)"
chmod 755 "$work"
floor_user=privdav-floor
pid=""
stop_server() {
  [ -n "$pid" ] || return 0
  kill "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
  pid=""
}
cleanup() {
  stop_server
  pkill -u "$floor_user" 2> /dev/null || true
  userdel -r "$floor_user" 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port=47099
descendants() { # a process and all below it
  local child
  echo "$1"
  for child in $(pgrep -P "$1"); do descendants "$child"; done
}
ticks_of() { # CPU ticks of a process and its descendants (a worker, Apache's children)
  local total=0 p
  # utime + stime, and cutime + cstime: a child that exits and is reaped in the measured window
  # (Apache retires children) moves its ticks into its parent's count instead of losing them.
  for p in $(descendants "$1"); do
    [ -r "/proc/$p/stat" ] && total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13 + $14 + $15}')))
  done
  echo "$total"
}
wait_for() { # url: until the server answers
  for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "no answer from $1" >&2
  return 1
}
measure() { # label url connections [lua]: req/s and CPU per request of $pid (and descendants)
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
start() { # command...: start a server as $pid, wait until it answers /file
  "$@" & pid=$!
  wait_for "http://127.0.0.1:$port/file"
}

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
mkdir "$work/state" "$work/apache"

gcc -O2 -o "$work/replace-floor" "$here/replace-floor.c"
mkdir "$work/replace"
for mode in 2 0 1; do "$work/replace-floor" "$work/replace" "$mode"; done

url="http://127.0.0.1:$port"
for round in $(seq "$rounds"); do
  echo "round $round"
  start node "$dist/apache-floor.js" "$port" "$floor_user" "$work/apache"
  measure "Apache mod_dav_fs, GET 4 KiB x16" "$url/file" 16
  measure "Apache mod_dav_fs, PUT 4 KiB x8" "$url/" 8 "$work/put.lua"
  measure "Apache mod_dav_fs, PROPFIND 1,000 x4" "$url/list/" 4 "$work/propfind.lua"
  stop_server
  for mode in memory file; do
    start node "$dist/http-floor.js" "$mode" "$port" "$home/file"
    measure "node:http, 4 KiB from $mode" "$url/file" 16
    stop_server
  done
  start node "$dist/chain-floor.js" "$port" "$floor_user" "$home/file"
  measure "the invariants' floor (node:http + a process of the user passing the descriptor), GET 4 KiB x16" "$url/file" 16
  measure "the invariants' floor (the body to a process of the user, fdatasync), PUT 4 KiB x8" "$url/" 8 "$work/put.lua"
  stop_server
  for mode in local privsep; do
    start node "$dist/dav-floor.js" "$mode" "$port" "$floor_user" true "$work/state"
    measure "DAV handler over $mode storage, GET 4 KiB x16" "$url/file" 16
    measure "DAV handler over $mode storage, PUT 4 KiB x8 (fdatasync)" "$url/" 8 "$work/put.lua"
    measure "DAV handler over $mode storage, PROPFIND 1,000 x4" "$url/list/" 4 "$work/propfind.lua"
    stop_server
  done
done
