#!/usr/bin/env bash
# Runs only the real-client suites (services/server/tests/tb_*, sdk_*, mockingbird) and ends with
# one line: `N passed, N failed`. The clients must be installed (`make clients`).
set -uo pipefail
cd "$(dirname "$0")/.."
args=()
for file in services/server/tests/tb_*.rs services/server/tests/sdk_*.rs services/server/tests/mockingbird.rs; do
  [ -f "$file" ] && args+=(--test "$(basename "$file" .rs)")
done
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test -p roost-server --no-fail-fast "${args[@]}" 2>&1 | tee "$log"
status="${PIPESTATUS[0]}"
read -r passed failed < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
  END { print p + 0, f + 0 }' "$log")
# A suite that did not build or run reports no result line: count the run as failed.
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
