#!/usr/bin/env bash
# Runs the whole suite: nextest when present (a process per test, which suits chDB's one data
# path per process), else cargo test.
set -euo pipefail
if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace --no-fail-fast --failure-output final
else
  exec cargo test --workspace --no-fail-fast
fi
