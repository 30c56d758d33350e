#!/usr/bin/env bash
# Roost in distributed mode on this machine: every role its own `roost serve` process.
#
#   scripts/cluster.sh deps-up     NATS (with JetStream) and PostgreSQL: checked, and started
#                                  (installed from Debian's packages when missing) only if they
#                                  do not already run; then the ClickHouse test cluster
#                                  (scripts/clickhouse-up.sh)
#   scripts/cluster.sh deps-down   stops the ClickHouse cluster, and NATS/PostgreSQL only if
#                                  deps-up started them
#   scripts/cluster.sh up          starts one process per role against PostgreSQL database
#                                  `roost`, NATS and the ClickHouse cluster; the gateway on
#                                  127.0.0.1:${ROOST_PORT:-7181}. Each role also serves gRPC
#                                  (health, reflection, its services) on 127.0.0.1, from port
#                                  ${ROOST_GRPC_BASE_PORT:-50051} in the order of the roles; the
#                                  roles call each other over ${ROOST_CLUSTER_TRANSPORT:-nats}
#                                  (nats or grpc)
#   scripts/cluster.sh down        stops those processes, by the pids `up` recorded
#   scripts/cluster.sh status      which roles run
#
# State (pids, logs, a generated config file) lives in $ROOST_CLUSTER_STATE_DIR (default
# ~/.cache/roost/cluster). ROOST_BIN names the roost binary (default: the release build).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
state_dir="${ROOST_CLUSTER_STATE_DIR:-${HOME:-/tmp}/.cache/roost/cluster}"
roost_bin="${ROOST_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/roost}"
port="${ROOST_PORT:-7181}"
nats_url="${ROOST_NATS_URL:-nats://127.0.0.1:4222}"
postgres_base="${ROOST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
database="${ROOST_CLUSTER_DATABASE:-roost}"
roles=(auth catalog query ingest jobs scheduler gateway)
grpc_base_port="${ROOST_GRPC_BASE_PORT:-50051}"
transport="${ROOST_CLUSTER_TRANSPORT:-nats}"

# The gRPC port of a role: the base port plus its index in `roles`.
grpc_port() {
  local index
  for index in "${!roles[@]}"; do
    [ "${roles[$index]}" = "$1" ] && { echo $((grpc_base_port + index)); return; }
  done
  return 1
}

log() { echo "cluster: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The recorded pid of a role if that process is still a `roost serve` of ours.
running_pid() {
  local file="$state_dir/pids/$1.pid" pid
  [ -s "$file" ] || return 1
  pid="$(cat "$file")"
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "serve --role $1" || return 1
  echo "$pid"
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    log "need root for: $*"
    return 3
  fi
}

apt_install() {
  log "installing $* from Debian's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -y -q install --no-install-recommends "$@" >/dev/null ||
    { as_root apt-get -q update >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get -y -q install --no-install-recommends "$@" >/dev/null; }
}

nats_up() {
  if port_open 4222; then
    log "NATS already runs on 127.0.0.1:4222 (left as it is; it must have JetStream on)"
    return
  fi
  command -v nats-server >/dev/null || apt_install nats-server
  mkdir -p "$state_dir/nats"
  nats-server -a 127.0.0.1 -p 4222 -js -sd "$state_dir/nats/jetstream" \
    >"$state_dir/nats/nats.log" 2>&1 &
  echo $! >"$state_dir/nats/pid"
  for _ in $(seq 50); do port_open 4222 && break; sleep 0.1; done
  port_open 4222 || { log "NATS did not start; see $state_dir/nats/nats.log"; exit 1; }
  log "started NATS with JetStream on 127.0.0.1:4222 (pid $(cat "$state_dir/nats/pid"))"
}

postgres_up() {
  if port_open 5432; then
    log "PostgreSQL already runs on 127.0.0.1:5432 (left as it is)"
    return
  fi
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  local version
  version="$(ls /etc/postgresql | sort -n | tail -1)"
  as_root pg_ctlcluster "$version" main start
  echo "$version" >"$state_dir/postgres-started"
  for _ in $(seq 100); do port_open 5432 && break; sleep 0.1; done
  log "started PostgreSQL $version (pg_ctlcluster); the cluster needs user postgres reachable on 127.0.0.1 without a password, or set ROOST_POSTGRES_URL"
}

deps_up() {
  mkdir -p "$state_dir"
  nats_up
  postgres_up
  "$root/scripts/clickhouse-up.sh" >/dev/null
  log "ClickHouse cluster ready (scripts/clickhouse-up.sh)"
}

deps_down() {
  "$root/scripts/clickhouse-down.sh"
  if [ -s "$state_dir/nats/pid" ]; then
    local pid
    pid="$(cat "$state_dir/nats/pid")"
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$state_dir/nats"; then
      kill "$pid" && log "stopped the NATS deps-up started (pid $pid)"
    fi
    rm -f "$state_dir/nats/pid"
  else
    log "NATS was not started by deps-up: left running"
  fi
  if [ -s "$state_dir/postgres-started" ]; then
    as_root pg_ctlcluster "$(cat "$state_dir/postgres-started")" main stop
    rm -f "$state_dir/postgres-started"
    log "stopped the PostgreSQL deps-up started"
  else
    log "PostgreSQL was not started by deps-up: left running"
  fi
}

up() {
  [ -x "$roost_bin" ] || { log "no roost binary at $roost_bin (build it, or set ROOST_BIN)"; exit 1; }
  for role in "${roles[@]}"; do
    if pid="$(running_pid "$role")"; then
      log "$role already runs (pid $pid); scripts/cluster.sh down first"
      exit 1
    fi
  done
  port_open 4222 || { log "NATS does not run on 127.0.0.1:4222: make deps-up"; exit 1; }
  # The database the catalog lives in; creating an existing one is fine.
  psql "$postgres_base/postgres" -qAtc "SELECT 1 FROM pg_database WHERE datname = '$database'" |
    grep -q 1 || psql "$postgres_base/postgres" -qc "CREATE DATABASE $database"
  local clickhouse
  clickhouse="$("$root/scripts/clickhouse-up.sh")"
  local urls cluster
  urls="$(sed -n 's/^ROOST_TEST_CLICKHOUSE_URLS=//p' <<<"$clickhouse")"
  cluster="$(sed -n 's/^ROOST_TEST_CLICKHOUSE_CLUSTER=//p' <<<"$clickhouse")"
  mkdir -p "$state_dir/pids" "$state_dir/logs"
  cat >"$state_dir/roost.toml" <<EOF
# Written by scripts/cluster.sh up; regenerated on every start.
[http]
listen = "127.0.0.1"
port = $port
serve_tokens = true

[store]
url = "$postgres_base/$database"

[engine]
kind = "clickhouse"
urls = [$(sed 's/[^,]*/"&"/g; s/,/, /g' <<<"$urls")]
cluster = "$cluster"

[nats]
url = "$nats_url"

[rpc]
transport = "$transport"

[grpc.services]
auth = "127.0.0.1:$(grpc_port auth)"
catalog = "127.0.0.1:$(grpc_port catalog)"
pipe_catalog = "127.0.0.1:$(grpc_port catalog)"
query = "127.0.0.1:$(grpc_port query)"
endpoint = "127.0.0.1:$(grpc_port query)"
ingest = "127.0.0.1:$(grpc_port ingest)"
jobs = "127.0.0.1:$(grpc_port jobs)"
scheduler = "127.0.0.1:$(grpc_port scheduler)"
EOF
  for role in "${roles[@]}"; do
    ROOST_CONFIG="$state_dir/roost.toml" ROOST_DATA_DIR="$state_dir/data-$role" \
      ROOST_GRPC_LISTEN="127.0.0.1:$(grpc_port "$role")" \
      nohup "$roost_bin" serve --role "$role" >"$state_dir/logs/$role.log" 2>&1 &
    echo $! >"$state_dir/pids/$role.pid"
  done
  for role in "${roles[@]}"; do
    for _ in $(seq 600); do
      grep -q "roost serve is ready" "$state_dir/logs/$role.log" && break
      if ! running_pid "$role" >/dev/null; then
        log "$role exited; its log:"
        cat "$state_dir/logs/$role.log" >&2
        down
        exit 1
      fi
      sleep 0.1
    done
    grep -q "roost serve is ready" "$state_dir/logs/$role.log" ||
      { log "$role was not ready in 60 s; see $state_dir/logs/$role.log"; down; exit 1; }
    log "$role ready (pid $(cat "$state_dir/pids/$role.pid"), gRPC on 127.0.0.1:$(grpc_port "$role"))"
  done
  log "gateway on http://127.0.0.1:$port (GET /tokens shows the tokens); services call each other over $transport; logs in $state_dir/logs; stop with make stop-cluster"
}

down() {
  local stopped=()
  for role in "${roles[@]}"; do
    if pid="$(running_pid "$role")"; then
      kill "$pid"
      stopped+=("$pid")
    fi
    rm -f "$state_dir/pids/$role.pid"
  done
  for pid in "${stopped[@]}"; do
    for _ in $(seq 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    [ -d "/proc/$pid" ] && kill -9 "$pid"
  done
  log "stopped ${#stopped[@]} processes"
}

status() {
  for role in "${roles[@]}"; do
    if pid="$(running_pid "$role")"; then echo "$role: running (pid $pid)"; else echo "$role: stopped"; fi
  done
}

case "${1:-}" in
  deps-up) deps_up ;;
  deps-down) deps_down ;;
  up) up ;;
  down) down ;;
  status) status ;;
  *)
    echo "usage: $0 deps-up|deps-down|up|down|status" >&2
    exit 2
    ;;
esac
