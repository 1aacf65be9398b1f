#!/usr/bin/env bash
# Installs what sqlchat needs on Debian 12 (PostgreSQL 15 server and headers, libclang,
# cargo-pgrx 0.18.0), then builds and installs the extension into the PostgreSQL that PG_CONFIG
# names (default the system's 15; tools/postgres.sh installs 16 and 18).
#   tools/setup.sh              debug build (fast to compile; what the tests use)
#   tools/setup.sh --release    optimised build (what the demo uses)
#   tools/setup.sh --init-only  prerequisites and cargo-pgrx's registration of PG_CONFIG, no build
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
PG_CONFIG=${PG_CONFIG:-$SYSTEM_PG_CONFIG}
profile=()
init_only=false
case "${1:-}" in
  --release) profile=(--release) ;;
  --init-only) init_only=true ;;
esac

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root (or sudo) for: $*" >&2; exit 1; fi
}

packages=()
if [ "$PG_CONFIG" = "$SYSTEM_PG_CONFIG" ]; then
  [ -x /usr/lib/postgresql/15/bin/postgres ] || packages+=(postgresql-15 postgresql-contrib)
  [ -f /usr/include/postgresql/15/server/postgres.h ] || packages+=(postgresql-server-dev-15)
fi
dpkg -s libclang-dev >/dev/null 2>&1 || packages+=(libclang-dev)
command -v psql >/dev/null || packages+=(postgresql-client-15)
if [ ${#packages[@]} -gt 0 ]; then
  echo "setup: installing ${packages[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi

if ! cargo pgrx --version 2>/dev/null | grep -q '0\.18\.0'; then
  echo "setup: installing cargo-pgrx 0.18.0 (a few minutes)"
  cargo install cargo-pgrx --version 0.18.0 --locked --quiet
fi
# cargo-pgrx's own record of which PostgreSQL it builds against (PGRX_HOME, default ~/.pgrx); it
# keeps the other versions registered there.
major=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
if ! grep -qs "pg$major = \"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
  cargo pgrx init "--pg$major" "$PG_CONFIG" >/dev/null
fi
$init_only && exit 0

echo "setup: building and installing the extension ${profile[*]:-(debug)} for PostgreSQL $major"
log=$(mktemp /tmp/sqlchat-build.XXXXXX.log)
sudo_flag=()
# cargo-pgrx writes into PostgreSQL's lib and extension directories.
[ -w "$($PG_CONFIG --pkglibdir)" ] || sudo_flag=(--sudo)
if ! cargo pgrx install "${profile[@]}" "${sudo_flag[@]}" --pg-config "$PG_CONFIG" >"$log" 2>&1; then
  tail -n 60 "$log" >&2
  echo "setup: the build failed (full log: $log)" >&2
  exit 1
fi
rm -f "$log"
echo "setup: sqlchat installed into $($PG_CONFIG --sharedir)/extension"
