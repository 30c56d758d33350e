# shellcheck shell=bash disable=SC2034 # variables used by the scripts that source this file
# Shared by clickhouse-up.sh and clickhouse-down.sh (sourced, not run): where the test cluster
# lives, its ports, and how to tell whether one of its processes is running.
#
# Every setting can be overridden from the environment, so two checkouts (or CI jobs) can run
# their own clusters side by side on other ports and state directories.

state_dir="${ROOST_CLICKHOUSE_STATE_DIR:-${HOME:-/tmp}/.cache/roost/clickhouse}"
cluster="${ROOST_CLICKHOUSE_CLUSTER:-roost}"
zookeeper_port="${ROOST_ZOOKEEPER_PORT:-12181}"
# Shard N (1-based) uses base + N - 1 for each of these.
http_port_base="${ROOST_CLICKHOUSE_HTTP_PORT:-18123}"
tcp_port_base="${ROOST_CLICKHOUSE_TCP_PORT:-19000}"
interserver_port_base="${ROOST_CLICKHOUSE_INTERSERVER_PORT:-19009}"
zookeeper_jar="${ROOST_ZOOKEEPER_JAR:-/usr/share/java/zookeeper.jar}"
shards=(1 2)

log() { echo "clickhouse-harness: $*" >&2; }

http_port() { echo $((http_port_base + $1 - 1)); }
tcp_port() { echo $((tcp_port_base + $1 - 1)); }
interserver_port() { echo $((interserver_port_base + $1 - 1)); }

# The pid recorded for a component, if that process is still ours: alive, not a zombie (a
# zombie has an empty command line), and started with our own config file. A stale pid file or a
# recycled pid then reads as "not running" and is never signalled.
running_pid() {
  local name="$1" marker="$2" pid
  [ -s "$state_dir/$name/pid" ] || return 1
  pid="$(cat "$state_dir/$name/pid")"
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
  echo "$pid"
}

zookeeper_marker() { echo "$state_dir/zookeeper/zoo.cfg"; }
shard_marker() { echo "$state_dir/shard$1/config.xml"; }

# Whether something accepts TCP connections on 127.0.0.1:port.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Sends a ZooKeeper four-letter word and prints the answer.
zookeeper_word() {
  local answer
  answer="$(
    exec 3<>"/dev/tcp/127.0.0.1/$zookeeper_port" || exit 1
    printf '%s' "$1" >&3
    timeout 2 cat <&3
  )" 2>/dev/null || true
  printf '%s' "$answer"
}

# Stops a process by its exact pid: TERM, then KILL after a grace period.
stop_pid() {
  local pid="$1" what="$2"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 150); do
    if [ ! -r "/proc/$pid/cmdline" ] || [ -z "$(tr -d '\0' <"/proc/$pid/cmdline" 2>/dev/null)" ]; then
      return 0
    fi
    sleep 0.1
  done
  log "$what (pid $pid) did not stop within 15 s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}
