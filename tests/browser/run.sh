#!/usr/bin/env bash
# Browser test of chart suggestions: prints the suggest_chart output for a fixed set of result
# shapes (core/examples/chart_specs.rs), draws each Vega-Lite spec with vega-embed in headless
# Chromium and checks it was drawn without error, with the marks its chart type needs.
#
#     tests/browser/run.sh            # screenshots and specs.jsonl go to tests/browser/out
#
# Installs what it lacks: Debian's chromium (apt-get) and the npm packages of package-lock.json.
# CHART_TEST_OUT sets the output folder, CHROMIUM the browser. Exits non-zero when a chart fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${CHART_TEST_OUT:-$here/out}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if [ ! -x "$CHROMIUM" ]; then
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
node "$here/run.mjs" "$out/specs.jsonl" "$out"
