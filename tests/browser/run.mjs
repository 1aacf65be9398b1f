// Draws every spec of the browser set of a chart_specs JSON-lines file with vega-embed in headless
// Chromium and checks each one: the embed promise resolved, the page logged no error, and the SVG
// holds the marks the chart type needs. Writes a screenshot per chart.
//
//     node run.mjs SPECS.jsonl OUT_DIR
//
// CHROMIUM overrides the browser (default /usr/bin/chromium). Exits 1 when any chart fails.

import { mkdtempSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const PAGE_ROOT = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const EMBED_TIMEOUT_MS = 20_000;
const RUN_TIMEOUT_MS = 150_000;
/// The most rows and columns a suggested table shows (as core/src/chart/vega.rs draws them).
const TABLE_ROWS = 100;
const TABLE_COLUMNS = 20;
const CONTENT_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.jsonl': 'application/x-ndjson; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

function main() {
  const [specsPath, outDir] = process.argv.slice(2);
  if (!specsPath || !outDir) {
    console.error('usage: node run.mjs SPECS.jsonl OUT_DIR');
    process.exit(2);
  }
  const cases = readFileSync(specsPath, 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line))
    .filter((c) => c.set === 'browser');
  mkdirSync(outDir, { recursive: true });
  const watchdog = setTimeout(() => {
    console.error(`gave up after ${RUN_TIMEOUT_MS / 1000} s`);
    process.exit(1);
  }, RUN_TIMEOUT_MS);
  watchdog.unref();
  return run(cases, specsPath, outDir);
}

/// Serves the page, its scripts from node_modules and the specs file, on a free loopback port.
function serve(specsPath) {
  const server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url, 'http://127.0.0.1').pathname);
    let file;
    if (path === '/') file = join(PAGE_ROOT, 'index.html');
    else if (path === '/specs.jsonl') file = resolve(specsPath);
    else file = resolve(PAGE_ROOT, normalize(`.${path}`));
    const inside = file === resolve(specsPath) || file.startsWith(PAGE_ROOT + sep);
    let body;
    try {
      body = inside ? readFileSync(file) : null;
    } catch {
      body = null;
    }
    if (request.method !== 'GET' || body === null) {
      response.writeHead(404).end();
      return;
    }
    const type = CONTENT_TYPES[extname(file)] || 'application/octet-stream';
    response.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
  });
  return new Promise((done, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => done(server));
  });
}

function distinctCount(values, keyOf) {
  return new Set(values.map(keyOf)).size;
}

function columnNames(rows) {
  return [...new Set(rows.flatMap((row) => Object.keys(row)))];
}

/// What the SVG of a suggestion must contain: which mark group and how many items.
function expectedMarks(suggestion) {
  const rows = suggestion.vega_lite?.data?.values ?? [];
  const { x, y, series } = suggestion;
  const at = (name) => (row) => JSON.stringify(row[name] ?? null);
  const pairs = (row) => `${at(x)(row)}|${series ? at(series)(row) : ''}`;
  switch (suggestion.chart_type) {
    case 'line':
      return { mark: 'line', count: series ? distinctCount(rows, at(series)) : 1 };
    case 'bar':
    case 'horizontal_bar':
      return { mark: 'rect', count: distinctCount(rows, at(x)) };
    case 'stacked_bar':
    case 'grouped_bar':
    case 'heatmap':
      return { mark: 'rect', count: distinctCount(rows, pairs) };
    case 'histogram':
      return { mark: 'rect', atLeast: 2 };
    case 'pie':
    case 'donut':
      return { mark: 'arc', count: distinctCount(rows, at(x)) };
    case 'scatter':
      return {
        mark: 'symbol',
        count: rows.filter((row) => typeof row[x] === 'number' && typeof row[y] === 'number').length,
      };
    case 'kpi':
      return { mark: 'text', count: 1, value: rows[0]?.[y] };
    case 'table': {
      // Without rows or columns the table is a one-line notice.
      const columns = columnNames(rows).length;
      return rows.length === 0 || columns === 0
        ? { mark: 'text', atLeast: 1 }
        : { mark: 'text', count: Math.min(rows.length, TABLE_ROWS) * Math.min(columns, TABLE_COLUMNS) };
    }
    default:
      return { mark: 'unknown', atLeast: 1 };
  }
}

/// Counts the data marks (not axes, legends or titles) vega drew into one chart's SVG.
function inspectSvg(name) {
  const root = document.querySelector(`#chart-${CSS.escape(name)} svg`);
  if (!root) return null;
  const items = (mark, tag) => [...root.querySelectorAll(`g.mark-${mark}.role-mark > ${tag}`)];
  return {
    line: items('line', 'path').length,
    rect: items('rect', 'path').length,
    arc: items('arc', 'path').length,
    symbol: items('symbol', 'path').length,
    text: items('text', 'text').filter((t) => t.textContent.trim()).length,
    texts: items('text', 'text').slice(0, 3).map((t) => t.textContent),
    hasNaN: /NaN|Infinity/.test(root.outerHTML),
    width: root.getBoundingClientRect().width,
    height: root.getBoundingClientRect().height,
  };
}

function checkMarks(expected, svg) {
  const problems = [];
  if (!svg) return ['no SVG was drawn'];
  if (svg.hasNaN) problems.push('the SVG has NaN or Infinity in it');
  if (svg.width < 20 || svg.height < 20) problems.push(`the SVG is ${svg.width}x${svg.height} px`);
  const drawn = svg[expected.mark] ?? 0;
  if (expected.count !== undefined && drawn !== expected.count) {
    problems.push(`${drawn} ${expected.mark} marks, expected ${expected.count}`);
  }
  if (expected.atLeast !== undefined && drawn < expected.atLeast) {
    problems.push(`${drawn} ${expected.mark} marks, expected at least ${expected.atLeast}`);
  }
  if (typeof expected.value === 'number') {
    // d3-format writes negative numbers with the minus sign U+2212.
    const shown = Number(String(svg.texts[0] ?? '').replace(/,/g, '').replace(/\u2212/g, '-'));
    if (!(Math.abs(shown - expected.value) <= Math.abs(expected.value) * 1e-3)) {
      problems.push(`the figure reads "${svg.texts[0]}", expected ${expected.value}`);
    }
  }
  return problems;
}

async function run(cases, specsPath, outDir) {
  const started = Date.now();
  const server = await serve(specsPath);
  const { port } = server.address();
  const userDataDir = mkdtempSync(join(tmpdir(), 'sqlchat-chart-test-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1000, height: 800 },
  });
  let exitCode = 1;
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    // Messages land on the chart being drawn; anything before the first chart fails them all.
    let logs = [];
    page.on('console', (message) => {
      if (['error', 'warning'].includes(message.type())) logs.push(`console ${message.type()}: ${message.text()}`);
    });
    page.on('pageerror', (error) => logs.push(`page error: ${error.message}`));
    page.on('requestfailed', (request) => logs.push(`request failed: ${request.url()}`));
    page.on('response', (response) => {
      if (response.status() >= 400) logs.push(`HTTP ${response.status()}: ${response.url()}`);
    });
    await page.goto(`http://127.0.0.1:${port}/?driver`);
    const names = await page.evaluate(() => window.chartPage.ready);
    const pageLogs = logs;
    let passed = 0;
    let drawnClean = 0;
    for (const c of cases) {
      logs = [...pageLogs];
      const problems = [];
      const suggestion = c.suggestion;
      if (!names.includes(c.name)) problems.push('the page did not list it');
      const embed = await Promise.race([
        page.evaluate((name) => window.chartPage.drawChart(name), c.name),
        new Promise((done) => setTimeout(() => done({ ok: false, error: `no result in ${EMBED_TIMEOUT_MS} ms` }), EMBED_TIMEOUT_MS)),
      ]);
      if (!embed.ok) problems.push(`vega-embed failed: ${embed.error}`);
      const svg = await page.evaluate(inspectSvg, c.name);
      problems.push(...logs);
      if (problems.length === 0) drawnClean += 1;
      const expected = expectedMarks(suggestion);
      problems.push(...checkMarks(expected, svg));
      if (c.intended && c.intended !== suggestion.chart_type) {
        problems.push(`suggested ${suggestion.chart_type}, the case was written for ${c.intended}`);
      }
      if (svg) await page.locator(`#chart-${c.name}`).screenshot({ path: join(outDir, `${c.name}.png`) });
      if (problems.length === 0) {
        passed += 1;
        console.log(`ok    ${c.name} (${suggestion.chart_type}: ${svg[expected.mark]} ${expected.mark} marks)`);
      } else {
        console.log(`FAIL  ${c.name} (${suggestion.chart_type}): ${problems.join('; ')}`);
      }
    }
    const failed = cases.length - passed;
    const share = cases.length ? ((100 * drawnClean) / cases.length).toFixed(1) : '0.0';
    console.log(`drawn without error: ${drawnClean}/${cases.length} (${share}%) in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${outDir}`);
    console.log(`${passed} passed, ${failed} failed`);
    exitCode = failed === 0 && cases.length > 0 ? 0 : 1;
  } finally {
    await context.close();
    server.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
