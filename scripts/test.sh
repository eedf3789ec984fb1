#!/usr/bin/env bash
# `npm test`: set up (idempotent), then run every test file with node's test runner, one file at
# a time (the end-to-end tests start real daemons and create real users). Arguments narrow the
# run: `npm test -- test/unit/cookie.test.ts` or a folder such as `test/e2e`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$#" -eq 0 ]; then
  set --
  for folder in test/unit test/security test/e2e; do [ -d "$folder" ] && set -- "$@" "$folder"; done
fi
files=()
for target in "$@"; do
  target="${target%.ts}"; target="${target#dist/}"
  if [ -d "$target" ]; then
    # Each folder's tests, in name order.
    while IFS= read -r file; do files+=("dist/${file%.ts}.js"); done < <(find "$target" -name '*.test.ts' | sort)
  else
    files+=("dist/${target%.js}.js")
  fi
done
exec node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
