#!/usr/bin/env bash
# Runs every test layer on a fresh machine: installs what is missing, builds, then
#   1. core unit tests (cargo test -p sqlchat-core)
#   2. #[pg_test]s of the extension (cargo pgrx test)
#   3. suggested charts validated against the official Vega-Lite schema (ajv) and rendered with
#      vega-embed in headless Chromium,
#   4. pg_regress cases of the SQL surface, and
#   5. end-to-end tests (pytest) against a cluster of its own and the fake gateway.
# Public eval data is read from $SQLCHAT_EVAL_DIR or ../shared/eval; tests needing it skip without it.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: tools/test.sh [--help]

Installs what is missing, builds and installs the debug extension (tools/setup.sh), then runs
every test layer in this order (about 10 minutes). To run one layer alone:

  1. core unit tests (no PostgreSQL)    cargo test -p sqlchat-core
  2. #[pg_test]s of the extension       cargo pgrx test pg15 [TEST NAME FILTER]
                                        as root: cargo pgrx test pg15 --runas postgres --pgdata DIR/data
                                        (DIR owned by postgres)
  3. charts drawn in headless Chromium  tests/browser/run.sh
  4. pg_regress cases                   python3 -m pytest tests/e2e/test_regress.py -q
  5. end-to-end tests (pytest)          python3 -m pytest tests/e2e -q
                                        one module: python3 -m pytest tests/e2e/test_errors.py -q

Layers 4 and 5 need the extension installed (tools/setup.sh) and the Python packages in
tests/requirements.txt; they start their own cluster and fake gateway. Layer 2 installs a test
build: run tools/setup.sh again afterwards.

Environment: PG_CONFIG (the PostgreSQL to build for; default the system's 15), PGBIN (its binaries,
for the test clusters), SQLCHAT_EVAL_DIR (public eval data; default ../shared/eval; tests that
need it skip without it), SQLCHAT_RESULTS_DIR (measured figures; default results/),
SQLCHAT_E2E_PORTS (LOW-HIGH ports for the test clusters).
EOF
}
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
export SQLCHAT_RESULTS_DIR=${SQLCHAT_RESULTS_DIR:-$PWD/results}
mkdir -p "$SQLCHAT_RESULTS_DIR"

tools/setup.sh
# The PostgreSQL the extension was built for (PG_CONFIG, default the system's 15) runs every cluster.
export PGBIN=${PGBIN:-$("${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}" --bindir)}
command -v sudo >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sudo >/dev/null; }
python3 -m pip install -q -r tests/requirements.txt 2>/dev/null || python3 -m pip install -q --break-system-packages -r tests/requirements.txt

echo "== core unit tests"
cargo test -q -p sqlchat-core 2>&1 | tail -n 25

echo "== extension #[pg_test]s"
pgtest_dir=$(mktemp -d /tmp/sqlchat-pgtest.XXXXXX)
chown postgres "$pgtest_dir" 2>/dev/null || true
if [ "$(id -u)" = 0 ]; then
  cargo pgrx test pg15 --runas postgres --pgdata "$pgtest_dir/data" 2>&1 | grep -E "^test |test result|panicked|error" || { echo "pg_test failed"; exit 1; }
else
  cargo pgrx test pg15 2>&1 | grep -E "^test |test result|panicked|error"
fi
tools/setup.sh   # cargo pgrx test installs a test build; put the real one back

echo "== charts: Vega-Lite schema check, then drawn by vega-embed in headless Chromium"
tests/browser/run.sh

echo "== pg_regress and end-to-end tests"
python3 -m pytest tests/e2e -q -rs --durations=8
