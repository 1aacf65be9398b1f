// Validates the Vega-Lite spec of every line of a chart_specs JSON-lines file against the official
// Vega-Lite JSON schema (node_modules/vega-lite/build/vega-lite-schema.json, the version that
// package-lock.json pins) with ajv, the validator Vega-Lite's own tests use. Each spec's $schema
// must name that very version. Prints the figures per set and per chart type, and every failure.
//
//     node validate.mjs SPECS.jsonl
//
// Exits 1 when any spec fails (or the file holds none), 2 on bad usage.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';

const require = createRequire(import.meta.url);
const SCHEMA = require('vega-lite/build/vega-lite-schema.json');
const { version: VEGA_LITE_VERSION } = require('vega-lite/package.json');
const SCHEMA_URL = `https://vega.github.io/schema/vega-lite/v${VEGA_LITE_VERSION}.json`;
/// Errors printed per failing spec (anyOf branches make many; the first few locate the problem).
const ERRORS_SHOWN = 4;

function validator() {
  // Strict about the spec; the type-annotation warnings are about how the schema itself is written.
  const ajv = new Ajv({ allErrors: true, strictTypes: false });
  addFormats(ajv);
  ajv.addFormat('color-hex', true); // Vega-Lite's own format; the renderer checks colours
  return ajv.compile(SCHEMA);
}

/// The ajv errors of one spec as short lines, the most specific (deepest path) first.
function describe(errors) {
  const lines = (errors ?? [])
    .slice()
    .sort((a, b) => b.instancePath.length - a.instancePath.length)
    .map((e) => {
      const extra = e.params?.additionalProperty ? ` "${e.params.additionalProperty}"` : '';
      return `${e.instancePath || '/'} ${e.message}${extra}`;
    });
  return [...new Set(lines)].slice(0, ERRORS_SHOWN);
}

function count(table, key, failed) {
  const row = (table[key] ??= { checked: 0, failing: 0 });
  row.checked += 1;
  if (failed) row.failing += 1;
}

function printTable(title, table) {
  console.log(title);
  for (const [key, { checked, failing }] of Object.entries(table).sort()) {
    console.log(`  ${key.padEnd(16)} ${String(checked).padStart(4)} checked ${String(failing).padStart(4)} failing`);
  }
}

function main() {
  const [specsPath] = process.argv.slice(2);
  if (!specsPath) {
    console.error('usage: node validate.mjs SPECS.jsonl');
    process.exit(2);
  }
  const cases = readFileSync(specsPath, 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line));
  const validate = validator();
  const bySet = {};
  const byType = {};
  let failing = 0;
  for (const c of cases) {
    const spec = c.suggestion?.vega_lite;
    const problems = [];
    if (spec?.$schema !== SCHEMA_URL) problems.push(`$schema is ${JSON.stringify(spec?.$schema)}, not ${SCHEMA_URL}`);
    if (!validate(spec)) problems.push(...describe(validate.errors));
    const failed = problems.length > 0;
    count(bySet, c.set ?? '(none)', failed);
    count(byType, c.suggestion?.chart_type ?? '(none)', failed);
    if (failed) {
      failing += 1;
      console.log(`INVALID  ${c.set}/${c.name} (${c.suggestion?.chart_type}): ${problems.join('; ')}`);
    }
  }
  printTable(`Vega-Lite ${VEGA_LITE_VERSION} schema, specs per set:`, bySet);
  printTable('specs per chart type:', byType);
  console.log(`${cases.length - failing}/${cases.length} specs valid, ${failing} invalid`);
  process.exit(failing === 0 && cases.length > 0 ? 0 : 1);
}

main();
