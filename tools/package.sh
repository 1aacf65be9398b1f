#!/usr/bin/env bash
# Builds sqlchat's binary package for the PostgreSQL that PG_CONFIG names (default the system's 15):
# target/package/sqlchat-<version>-pg<major>-<arch>-linux.tar.gz, holding the library, the control
# file, the install and upgrade scripts, META.json and INSTALL.md (how to install it).
#   tools/package.sh          optimised build
#   tools/package.sh --debug  debug build (quick after tools/setup.sh; what the tests check)
#   OUT=DIR tools/package.sh  write the tarball into DIR
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
export PG_CONFIG
profile=()
[ "${1:-}" = "--debug" ] && profile=(--debug)
out=${OUT:-$PWD/target/package}

tools/setup.sh --init-only
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
major=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
name=sqlchat-$version-pg$major-$(uname -m)-linux
stage=$(mktemp -d /tmp/sqlchat-package.XXXXXX)
trap 'rm -rf "$stage"' EXIT

log=$stage/build.log
if ! cargo pgrx package "${profile[@]}" --pg-config "$PG_CONFIG" --out-dir "$stage/pgrx" >"$log" 2>&1; then
  tail -n 60 "$log" >&2
  echo "package: the build failed" >&2
  exit 1
fi
# cargo pgrx package lays the files out under PG_CONFIG's own directories; the tarball keeps only
# the two that matter, so that it installs into any PostgreSQL of that major version.
mkdir -p "$stage/$name/lib" "$stage/$name/extension"
find "$stage/pgrx" -name sqlchat.so -exec cp {} "$stage/$name/lib/" \;
find "$stage/pgrx" \( -name sqlchat.control -o -name 'sqlchat--*.sql' \) -exec cp {} "$stage/$name/extension/" \;
cp META.json "$stage/$name/"
glibc=$(objdump -T "$stage/$name/lib/sqlchat.so" | grep -oE 'GLIBC_[0-9.]+' | sort -uV | tail -n 1 | cut -d_ -f2)
cat >"$stage/$name/INSTALL.md" <<NOTE
# sqlchat $version for PostgreSQL $major ($(uname -m) Linux, glibc $glibc or newer)

Copy the library and the extension files into the PostgreSQL $major installation that \`pg_config\`
describes (on Debian: \`/usr/lib/postgresql/$major/bin/pg_config\`):

    sudo install -m 755 lib/sqlchat.so "\$(pg_config --pkglibdir)/"
    sudo install -m 644 extension/* "\$(pg_config --sharedir)/extension/"

Then load the library when the server starts (postgresql.conf, then restart the server) and create
the extension in each database that should have it:

    shared_preload_libraries = 'sqlchat'
    sqlchat.api_key_file = '/etc/postgresql/sqlchat.key'   # the key, readable by the server's user only
    sqlchat.api_base = 'https://api.openai.com/v1'
    sqlchat.model = 'gpt-4o-mini'

    CREATE EXTENSION sqlchat;

Upgrading from an earlier version: install the files as above, restart the server, then in each
database that has the extension:

    ALTER EXTENSION sqlchat UPDATE;

Rows of memory and cache whose role was dropped before an upgrade to 0.2.0 are removed (a WARNING
says how many). The README describes the settings, the functions and what sqlchat guarantees.
NOTE
mkdir -p "$out"
tar -C "$stage" -czf "$out/$name.tar.gz" "$name"
echo "$out/$name.tar.gz"
