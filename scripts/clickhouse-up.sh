#!/usr/bin/env bash
# Starts a real ClickHouse test cluster on loopback: one ZooKeeper and two clickhouse-server
# processes (Debian's 18.16) forming the 2-shard cluster `roost` (ON CLUSTER DDL, ReplicatedMergeTree,
# Distributed tables). Installs the Debian packages when missing. Idempotent: what already runs is
# left alone; what is missing is started. Waits until every part answers, then prints on stdout
# (progress goes to stderr):
#
#   ROOST_TEST_CLICKHOUSE_URL=http://127.0.0.1:18123
#   ROOST_TEST_CLICKHOUSE_URLS=http://127.0.0.1:18123,http://127.0.0.1:18124
#   ROOST_TEST_CLICKHOUSE_CLUSTER=roost
#   ROOST_TEST_ZOOKEEPER=127.0.0.1:12181
#
# so `eval "$(scripts/clickhouse-up.sh)"` sets up a shell. State (configs, data, logs, pids) lives in
# $ROOST_CLICKHOUSE_STATE_DIR (default ~/.cache/roost/clickhouse), never in the repository; see
# clickhouse-lib.sh for the port variables. Stop with scripts/clickhouse-down.sh.
#
# Exit codes: 0 ready; 3 the packages are missing and cannot be installed; 1 anything else.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=clickhouse-lib.sh
. "$(dirname "$0")/clickhouse-lib.sh"

started_at="$(date +%s%N)"

install_packages() {
  local missing=()
  command -v clickhouse-server >/dev/null || missing+=(clickhouse-server)
  command -v clickhouse-client >/dev/null || missing+=(clickhouse-client)
  { [ -f "$zookeeper_jar" ] && command -v java >/dev/null; } || missing+=(zookeeper)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} -eq 0 ] && return 0

  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      log "missing ${missing[*]}; install them as root: apt-get install ${missing[*]}"
      exit 3
    fi
  fi
  if ! command -v apt-get >/dev/null; then
    log "missing ${missing[*]} and there is no apt-get to install them with"
    exit 3
  fi
  log "installing ${missing[*]} with apt-get"
  local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confold)
  # A stale package index is the usual reason an install fails; refresh it once and try again.
  if ! "${apt[@]}" install --no-install-recommends "${missing[@]}" >"$state_dir/apt.log" 2>&1; then
    "${apt[@]}" update >>"$state_dir/apt.log" 2>&1 || true
    if ! "${apt[@]}" install --no-install-recommends "${missing[@]}" >>"$state_dir/apt.log" 2>&1; then
      log "apt-get could not install ${missing[*]}; see $state_dir/apt.log"
      exit 3
    fi
  fi
}

# Refuses to start a component whose port something else already holds.
require_free_port() {
  if port_open "$1"; then
    log "port $1 ($2) is taken by another process; choose other ports with the ROOST_CLICKHOUSE_* / ROOST_ZOOKEEPER_PORT variables"
    exit 1
  fi
}

# Set when this run started something, which must then be proven to work end to end.
started_any=false

start_zookeeper() {
  local dir="$state_dir/zookeeper"
  if pid="$(running_pid zookeeper "$(zookeeper_marker)")"; then
    log "zookeeper already running (pid $pid)"
    return 0
  fi
  started_any=true
  require_free_port "$zookeeper_port" zookeeper
  mkdir -p "$dir/data" "$dir/log"
  cat >"$dir/zoo.cfg" <<EOF
# Written by scripts/clickhouse-up.sh; regenerated on every start.
tickTime=2000
dataDir=$dir/data
clientPort=$zookeeper_port
clientPortAddress=127.0.0.1
maxClientCnxns=200
# No Jetty admin server (it would take port 8080 on every interface).
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
EOF
  # Debian's zookeeper.jar names its dependencies in its manifest, so the jar alone is the class path.
  # setsid: the process outlives this script and a Ctrl-C in the caller's terminal. `9>&-`: it
  # must not inherit the lock descriptor, or it would hold the harness lock for its whole life.
  setsid nohup java -Xms32m -Xmx256m -XX:+UseSerialGC \
    -Dzookeeper.log.dir="$dir/log" -Djava.io.tmpdir="$dir/data" \
    -cp "$zookeeper_jar" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" \
    >"$dir/log/stdout.log" 2>&1 </dev/null 9>&- &
  echo $! >"$dir/pid"
  log "zookeeper starting on 127.0.0.1:$zookeeper_port (pid $!)"
}

write_shard_config() {
  local shard="$1" dir="$state_dir/shard$1"
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/log"
  local replicas=""
  for other in "${shards[@]}"; do
    replicas+="
            <shard>
                <internal_replication>true</internal_replication>
                <replica><host>127.0.0.1</host><port>$(tcp_port "$other")</port></replica>
            </shard>"
  done
  cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<!-- Written by scripts/clickhouse-up.sh; regenerated on every start. -->
<yandex>
    <logger>
        <level>information</level>
        <log>$dir/log/server.log</log>
        <errorlog>$dir/log/server.err.log</errorlog>
        <size>50M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$(http_port "$shard")</http_port>
    <tcp_port>$(tcp_port "$shard")</tcp_port>
    <interserver_http_port>$(interserver_port "$shard")</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
    <remote_servers>
        <$cluster>$replicas
        </$cluster>
    </remote_servers>
    <zookeeper>
        <node><host>127.0.0.1</host><port>$zookeeper_port</port></node>
        <session_timeout_ms>30000</session_timeout_ms>
    </zookeeper>
    <macros>
        <cluster>$cluster</cluster>
        <shard>0$shard</shard>
        <replica>shard$shard</replica>
    </macros>
    <distributed_ddl>
        <path>/clickhouse/task_queue/ddl</path>
    </distributed_ddl>
</yandex>
EOF
  # `default` has no password and is reachable from loopback only; `roost` (password `roost`)
  # lets tests exercise credentials.
  cat >"$dir/users.xml" <<'EOF'
<?xml version="1.0"?>
<!-- Written by scripts/clickhouse-up.sh; regenerated on every start. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <roost>
            <password>roost</password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </roost>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

start_shard() {
  local shard="$1" dir="$state_dir/shard$1"
  if pid="$(running_pid "shard$shard" "$(shard_marker "$shard")")"; then
    log "shard $shard already running (pid $pid)"
    return 0
  fi
  require_free_port "$(http_port "$shard")" "shard $shard HTTP"
  require_free_port "$(tcp_port "$shard")" "shard $shard native"
  require_free_port "$(interserver_port "$shard")" "shard $shard interserver"
  started_any=true
  write_shard_config "$shard"
  # Runs as whoever runs this script (root included: 18.16 does not refuse it), on files it owns;
  # detached and without the lock descriptor, as ZooKeeper above.
  setsid nohup clickhouse-server --config-file="$dir/config.xml" \
    >"$dir/log/stdout.log" 2>&1 </dev/null 9>&- &
  echo $! >"$dir/pid"
  log "shard $shard starting on http://127.0.0.1:$(http_port "$shard") (pid $!)"
}

# Runs `sql` on a shard over HTTP and prints the answer; fails on an error status.
shard_query() {
  curl -sS --fail --max-time 10 --data-binary "$2" "http://127.0.0.1:$(http_port "$1")/"
}

# 18.16 can crash (a NULL read in zkutil::ZooKeeper::createImpl) when its first ZooKeeper session
# fails while ZooKeeper is still starting on a loaded machine: a dead server is started again,
# and the wait goes on until it answers.
restart_dead_shards() {
  for shard in "${shards[@]}"; do
    if ! running_pid "shard$shard" "$(shard_marker "$shard")" >/dev/null; then
      log "shard $shard exited; starting it again"
      start_shard "$shard" >&2
      wait_until "shard $shard" 60 "[ \"\$(shard_query $shard 'SELECT 1')\" = 1 ]" \
        "$state_dir/shard$shard/log/server.err.log"
    fi
  done
}

wait_until() {
  local what="$1" seconds="$2" check="$3" log_file="$4"
  local deadline=$(($(date +%s) + seconds))
  until eval "$check" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "$what is not ready after ${seconds} s; last lines of $log_file:"
      tail -n 20 "$log_file" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
}

mkdir -p "$state_dir"
exec 9>"$state_dir/lock"
# Test binaries may start the cluster at the same time; one does, the others find it running.
flock -w 300 9 || { log "timed out waiting for $state_dir/lock"; exit 1; }

install_packages
start_zookeeper
for shard in "${shards[@]}"; do start_shard "$shard"; done

# shellcheck disable=SC2016 # the check is eval'd by wait_until, on each try
wait_until "zookeeper" 60 '[ "$(zookeeper_word ruok)" = imok ]' "$state_dir/zookeeper/log/stdout.log"
for shard in "${shards[@]}"; do
  wait_until "shard $shard" 60 "[ \"\$(shard_query $shard 'SELECT 1')\" = 1 ]" "$state_dir/shard$shard/log/server.err.log"
done
# Ready for the cluster means: each server sees both shards and reaches ZooKeeper (its session is
# opened lazily, so ask through system.zookeeper).
for shard in "${shards[@]}"; do
  wait_until "shard $shard's cluster view" 60 \
    "[ \"\$(shard_query $shard \"SELECT count() FROM system.clusters WHERE cluster = '$cluster'\")\" = ${#shards[@]} ]" \
    "$state_dir/shard$shard/log/server.err.log"
  wait_until "shard $shard's ZooKeeper session" 60 \
    "restart_dead_shards && shard_query $shard \"SELECT count() FROM system.zookeeper WHERE path = '/'\"" \
    "$state_dir/shard$shard/log/server.err.log"
done

# After ZooKeeper or a server (re)started, a server's first ZooKeeper operation may still fail
# with "Session expired" while it renews its session. An ON CLUSTER DDL runs on every server
# through ZooKeeper, so once one succeeds the cluster is ready for tests' DDL.
if $started_any; then
  wait_until "ON CLUSTER DDL" 120 \
    "restart_dead_shards && shard_query 1 'CREATE DATABASE IF NOT EXISTS roost_harness ON CLUSTER $cluster'" \
    "$state_dir/shard1/log/server.err.log"
fi

urls=()
for shard in "${shards[@]}"; do urls+=("http://127.0.0.1:$(http_port "$shard")"); done
log "ready in $((($(date +%s%N) - started_at) / 1000000)) ms; state in $state_dir"
echo "ROOST_TEST_CLICKHOUSE_URL=${urls[0]}"
echo "ROOST_TEST_CLICKHOUSE_URLS=$(IFS=,; echo "${urls[*]}")"
echo "ROOST_TEST_CLICKHOUSE_CLUSTER=$cluster"
echo "ROOST_TEST_ZOOKEEPER=127.0.0.1:$zookeeper_port"
