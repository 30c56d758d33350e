#!/usr/bin/env bash
# Installs the released Tinybird CLI (PyPI tinybird-cli, with lru-dict beside it) into a cached
# virtualenv, so the end-to-end tests drive the real client as a user would.
set -euo pipefail
prefix="${1:-$HOME/.cache/roost/clients}"
if [ -x "$prefix/tb/bin/tb" ]; then
  exit 0
fi
mkdir -p "$prefix"
python3 -m venv "$prefix/tb.partial"
"$prefix/tb.partial/bin/pip" install --quiet --disable-pip-version-check tinybird-cli lru-dict
rm -rf "$prefix/tb"
mv "$prefix/tb.partial" "$prefix/tb"
# A venv records its own path; the move needs the scripts rewritten.
sed -i "s#$prefix/tb.partial#$prefix/tb#g" "$prefix/tb/bin/"* 2>/dev/null || true
echo "tinybird-cli installed in $prefix/tb"
