#!/usr/bin/env bash
# Chart suggestions checked two ways. The specs suggest_chart gives for fixed result shapes
# (core/examples/chart_specs.rs: the browser set, the hand-labelled shapes and the edge cases of
# core/tests/chart) are validated against the official Vega-Lite JSON schema of the pinned
# vega-lite package (validate.mjs, with ajv); the browser set is then drawn with vega-embed in
# headless Chromium and checked to be drawn without error, with the marks its chart type needs.
#
#     tests/browser/run.sh                # screenshots and specs.jsonl go to tests/browser/out
#     tests/browser/run.sh --schema-only  # the schema check alone (no browser needed)
#
# Installs what it lacks: Debian's chromium (apt-get) and the npm packages of package-lock.json.
# CHART_TEST_OUT sets the output folder, CHROMIUM the browser. Exits non-zero when a spec is
# invalid or a chart fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${CHART_TEST_OUT:-$here/out}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
schema_only=false
case "${1:-}" in
    --schema-only) schema_only=true ;;
    "") ;;
    *) echo "usage: $0 [--schema-only]" >&2; exit 2 ;;
esac

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! $schema_only && [ ! -x "$CHROMIUM" ]; then
    echo "Installing Debian's chromium..."
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "Node.js 20 or later and npm are needed" >&2
    exit 1
fi

cd "$here"
# npm writes node_modules/.package-lock.json on every install: older than the lock file means stale.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi

mkdir -p "$out"
(cd "$repo" && cargo run --quiet -p sqlchat-core --example chart_specs) >"$out/specs.jsonl"
status=0
node "$here/validate.mjs" "$out/specs.jsonl" || status=1
if ! $schema_only; then
    node "$here/run.mjs" "$out/specs.jsonl" "$out" || status=1
fi
exit $status
