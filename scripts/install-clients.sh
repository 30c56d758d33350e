#!/usr/bin/env bash
# Installs the released Tinybird clients into a cache, so the end-to-end tests drive them as a user
# would: the classic `tb` (PyPI tinybird-cli, with lru-dict beside it) in tb/, the Forward `tb`
# (PyPI tinybird) in forward/, tinybird-python-sdk and verdin in python-sdks/, and the npm
# @tinybirdco/sdk and @tinybirdco/mockingbird in node/node_modules.
set -euo pipefail
prefix="${1:-$HOME/.cache/roost/clients}"
mkdir -p "$prefix"

# Moves a finished venv into place; a venv records its own path, so the scripts are rewritten.
finish() {
  rm -rf "$prefix/$1"
  mv "$prefix/$1.partial" "$prefix/$1"
  grep -rlI --null "$prefix/$1.partial" "$prefix/$1/bin" | xargs -0 -r sed -i "s#$prefix/$1.partial#$prefix/$1#g"
}

if [ ! -x "$prefix/tb/bin/tb" ]; then
  python3 -m venv "$prefix/tb.partial"
  "$prefix/tb.partial/bin/pip" install --quiet --disable-pip-version-check tinybird-cli lru-dict
  finish tb
  echo "tinybird-cli installed in $prefix/tb"
fi

# The Forward CLI (PyPI `tinybird`, its `tb` drives Tinybird Local). Its exact pins cannot all be
# met from the registry (it asks for a certifi newer than any published), so the package goes in
# without its dependencies and then its requirements, as its metadata lists them, with certifi
# unpinned.
FORWARD_VERSION=5.0.3
if [ ! -x "$prefix/forward/bin/tb" ]; then
  python3 -m venv "$prefix/forward.partial"
  pip="$prefix/forward.partial/bin/pip"
  "$pip" install --quiet --disable-pip-version-check --no-deps "tinybird==$FORWARD_VERSION"
  "$pip" install --quiet --disable-pip-version-check \
    'aiofiles==24.1.0' boto3 certifi 'click<8.2,>=8.1.6' 'clickhouse-toolset==0.34.dev0' \
    'colorama==0.4.6' 'confluent-kafka==2.8.2' 'cryptography~=41.0.0' 'croniter==6.2.2' \
    'docker==7.1.0' 'GitPython~=3.1.32' 'humanfriendly~=8.2' 'prompt_toolkit==3.0.48' \
    'logfire-api==4.2.0' 'pydantic~=2.11.7' 'pyperclip==1.9.0' 'pyyaml<6.1,>=6.0' \
    'requests<3,>=2.28.1' 'shandy-sqlfmt[jinjafmt]==0.29.0' 'toposort==1.10' 'tornado~=6.5.5' \
    'urllib3<2,>=1.26.14' 'watchdog==6.0.0' wheel 'packaging<24,>=23.1' 'thefuzz==0.22.1' \
    'python-dotenv==1.1.0' 'pyjwt[crypto]==2.9.0'
  finish forward
  echo "tinybird (Forward CLI) $FORWARD_VERSION installed in $prefix/forward"
fi

# The Python SDKs: tinybird-python-sdk (module `tb`) and verdin, in one venv.
if [ ! -x "$prefix/python-sdks/bin/python" ] || ! "$prefix/python-sdks/bin/python" -c 'import verdin, tb.api' 2>/dev/null; then
  rm -rf "$prefix/python-sdks.partial"
  python3 -m venv "$prefix/python-sdks.partial"
  "$prefix/python-sdks.partial/bin/pip" install --quiet --disable-pip-version-check tinybird-python-sdk verdin
  finish python-sdks
  echo "tinybird-python-sdk and verdin installed in $prefix/python-sdks"
fi

# The npm clients: the TypeScript SDK and mockingbird (a library; tests drive it from a script).
if [ ! -d "$prefix/node/node_modules/@tinybirdco/sdk" ] || [ ! -d "$prefix/node/node_modules/@tinybirdco/mockingbird" ]; then
  mkdir -p "$prefix/node"
  [ -f "$prefix/node/package.json" ] || echo '{"name":"roost-clients","private":true}' > "$prefix/node/package.json"
  npm install --prefix "$prefix/node" --silent --no-audit --no-fund @tinybirdco/sdk @tinybirdco/mockingbird
  echo "@tinybirdco/sdk and @tinybirdco/mockingbird installed in $prefix/node"
fi
