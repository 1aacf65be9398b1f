// Draws each suggested spec of the browser set of specs.jsonl with vega-embed. Opened plainly, it
// draws them all; with ?driver the test runner draws them one at a time through
// window.chartPage.drawChart.

let cases = [];

async function loadCases() {
  const response = await fetch('specs.jsonl');
  if (!response.ok) throw new Error(`specs.jsonl: HTTP ${response.status}`);
  const text = await response.text();
  // The other sets of the file are for the schema check (validate.mjs) only.
  cases = text
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line))
    .filter((c) => c.set === 'browser');
  const main = document.getElementById('cases');
  for (const c of cases) {
    const section = document.createElement('section');
    const heading = document.createElement('h2');
    heading.textContent = `${c.name}: ${c.suggestion.chart_type}`;
    const question = document.createElement('p');
    question.textContent = `${c.question}`;
    const chart = document.createElement('div');
    chart.className = 'chart';
    chart.id = `chart-${c.name}`;
    const reason = document.createElement('p');
    reason.textContent = c.suggestion.reason;
    section.append(heading, question, chart, reason);
    main.append(section);
  }
  return cases.map((c) => c.name);
}

async function drawChart(name) {
  const c = cases.find((candidate) => candidate.name === name);
  if (!c) return { ok: false, error: `no case named ${name}` };
  try {
    await vegaEmbed(`#chart-${name}`, c.suggestion.vega_lite, { renderer: 'svg', actions: false });
    return { ok: true };
  } catch (error) {
    return { ok: false, error: String((error && error.message) || error) };
  }
}

const ready = loadCases();
window.chartPage = { ready, drawChart };

if (!new URLSearchParams(location.search).has('driver')) {
  ready.then(async (names) => {
    for (const name of names) await drawChart(name);
  });
}
