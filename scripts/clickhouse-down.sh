#!/usr/bin/env bash
# Stops what scripts/clickhouse-up.sh started, by the exact pids it recorded (never by name).
#
#   scripts/clickhouse-down.sh                 stop both shards, then ZooKeeper
#   scripts/clickhouse-down.sh shard2          stop one part (shard1, shard2 or zookeeper); tests
#                                              use this to take a server away and
#                                              clickhouse-up.sh to bring it back
#   scripts/clickhouse-down.sh --purge         stop everything and delete the state directory
#
# Stopping what is not running is not an error.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=clickhouse-lib.sh
. "$(dirname "$0")/clickhouse-lib.sh"

purge=false
parts=()
for arg in "$@"; do
  case "$arg" in
    --purge) purge=true ;;
    shard[0-9]* | zookeeper) parts+=("$arg") ;;
    *)
      echo "usage: $0 [--purge] [shard1|shard2|zookeeper]..." >&2
      exit 2
      ;;
  esac
done
if [ ${#parts[@]} -eq 0 ]; then
  for shard in "${shards[@]}"; do parts+=("shard$shard"); done
  parts+=(zookeeper)
fi

[ -d "$state_dir" ] || exit 0
mkdir -p "$state_dir"
exec 9>"$state_dir/lock"
flock -w 300 9 || { log "timed out waiting for $state_dir/lock"; exit 1; }

for part in "${parts[@]}"; do
  case "$part" in
    zookeeper) marker="$(zookeeper_marker)" ;;
    *) marker="$(shard_marker "${part#shard}")" ;;
  esac
  if pid="$(running_pid "$part" "$marker")"; then
    stop_pid "$pid" "$part"
    log "$part stopped (pid $pid)"
  else
    log "$part is not running"
  fi
  rm -f "$state_dir/$part/pid"
done

if $purge; then
  rm -rf "$state_dir"
  log "removed $state_dir"
fi
