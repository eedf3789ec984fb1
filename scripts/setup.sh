#!/usr/bin/env bash
# Idempotent set-up for `npm start` and `npm test` on Debian 12 with Node 20, as root: Debian
# packages, npm dependencies, the build, the `privdav` system account and /etc/pam.d/privdav.
# Each step is skipped when already done, so running it again costs a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# Debian packages: PAM headers for the native PAM binding, and the real clients the tests drive.
PACKAGES=(libpam0g-dev g++ make python3 litmus curl attr rclone cadaver davfs2 e2fsprogs bindfs strace)
# Servers and tools the tests run for real: PostgreSQL (the shared lock store), HAProxy and nginx
# (balancer, TLS-terminating proxy), Chromium (the same-origin attack), and the Debian package
# build and its checker.
PACKAGES+=(postgresql haproxy nginx-light openssl chromium dpkg-dev fakeroot lintian man-db)
# `setup.sh --bench` adds what `npm run bench` compares against and loads with.
if [ "${1:-}" = "--bench" ]; then PACKAGES+=(apache2 wrk); fi
if [ "$(id -u)" -eq 0 ]; then
  missing=()
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # One apt at a time on this machine (several checkouts may set up at once).
    flock /tmp/privdav-apt.lock apt-get update -qq
    flock /tmp/privdav-apt.lock apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  say "not root: skipping Debian packages, the privdav account and /etc/pam.d (non-root mode)"
fi

# npm dependencies (native ones are built from source: allowScripts in package.json approves them).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# The build: the native addon and TypeScript. Skipped when nothing changed since the last one.
stamp=dist/.build-stamp
if [ ! -f "$stamp" ] || [ -n "$(find common src helper native/src native/binding.gyp native/index.ts test bench types tsconfig.json package.json -newer "$stamp" -print -quit 2>/dev/null)" ]; then
  say "building"
  npm run --silent build
  touch "$stamp"
fi

if [ "$(id -u)" -eq 0 ]; then
  if ! getent passwd privdav >/dev/null; then
    say "creating the privdav system account"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin privdav
  fi
  if ! cmp -s config/pam.d/privdav /etc/pam.d/privdav; then
    say "installing /etc/pam.d/privdav"
    install -m 0644 config/pam.d/privdav /etc/pam.d/privdav
  fi
fi
