#!/usr/bin/env bash
# Fetches chDB's libchdb.so from the npm registry into a per-version user cache (never into the
# repository) and links it at .roost/lib/libchdb.so, where the engine looks for it.
set -euo pipefail

version="${LIBCHDB_VERSION:-26.7.3-stable.1}"
cache="${ROOST_CACHE:-$HOME/.cache/roost}/libchdb/$version"
root="$(cd "$(dirname "$0")/.." && pwd)"

if [ ! -s "$cache/libchdb.so" ]; then
  command -v npm >/dev/null || { echo "npm is needed to fetch libchdb (apt-get install npm)" >&2; exit 1; }
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "fetching @chdb/lib-linux-x64-gnu@$version from the npm registry..."
  (cd "$work" && npm pack --silent "@chdb/lib-linux-x64-gnu@$version" >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$cache"
  mv "$work/package/libchdb.so" "$cache/libchdb.so.partial"
  mv "$cache/libchdb.so.partial" "$cache/libchdb.so"
fi
mkdir -p "$root/.roost/lib"
ln -sfn "$cache/libchdb.so" "$root/.roost/lib/libchdb.so"
echo "libchdb $version: $root/.roost/lib/libchdb.so -> $cache/libchdb.so"
