#!/usr/bin/env bash
# The lint gate: rustfmt and clippy with warnings as errors, for the core and for the extension
# (built for the PostgreSQL that PG_CONFIG names, default the system's 15, with its #[pg_test]s).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== lint: cargo fmt --check"
cargo fmt --all --check
echo "== lint: clippy, sqlchat-core"
cargo clippy -q --all-targets -p sqlchat-core -- -D warnings
tools/setup.sh --init-only
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
major=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
echo "== lint: clippy, sqlchat for PostgreSQL $major"
cargo clippy -q --all-targets -p sqlchat --no-default-features --features "pg$major pg_test" -- -D warnings
echo "== lint: clean"
