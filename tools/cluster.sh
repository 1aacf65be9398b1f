#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster of the project's own, run as the `postgres` system user (initdb
# refuses root) on 127.0.0.1 and a port of its own.
#   tools/cluster.sh start DIR PORT [extra postgres -c options...]
#   tools/cluster.sh stop DIR
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
cmd=${1:?usage: cluster.sh start|stop DIR [PORT]}
dir=${2:?data directory}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    port=${3:?port}
    shift 3
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_pg "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
    fi
    opts="-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off"
    for o in "$@"; do opts="$opts -c $o"; done
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -o "$opts" -l "$dir/server.log" -w -t 60 start >/dev/null
    echo "cluster started: port $port, data $dir/data, log $dir/server.log"
    ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    fi
    ;;
  *)
    echo "usage: cluster.sh start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
