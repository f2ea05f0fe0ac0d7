// Line charts as SVG, drawn here (no library). One <polyline> per series, so 10 series of 5,000
// points is 10 elements: the browser lays that out in milliseconds. Data comes from
// <script type="application/json"> blocks the server wrote (series of [x, y] `points`) or from
// the history endpoints (series of `steps` and `values`, min/max decimated by the server to the
// chart's width); labels go in with textContent.
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 720, HEIGHT = 300, LEFT = 60, RIGHT = 16, TOP = 16, BOTTOM = 36;
const COLOURS = ["#0b5cad", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#be185d", "#4d7c0f", "#334155"];

function element(name, attributes = {}) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

function label(text, attributes) {
  const node = element("text", attributes);
  node.textContent = text;
  return node;
}

function format(value) {
  if (!Number.isFinite(value)) return String(value);
  const magnitude = Math.abs(value);
  return magnitude !== 0 && (magnitude >= 1e5 || magnitude < 1e-3) ? value.toExponential(2) : String(+value.toPrecision(4));
}

// A series as two arrays of drawable numbers (null values, i.e. not finite, left out).
function columns(s) {
  const xs = [], ys = [];
  if (Array.isArray(s.steps) && Array.isArray(s.values)) {
    for (let i = 0; i < s.steps.length; i++) if (s.values[i] !== null) { xs.push(s.steps[i]); ys.push(s.values[i]); }
  } else if (Array.isArray(s.points)) {
    for (const [x, y] of s.points) if (y !== null) { xs.push(x); ys.push(y); }
  }
  return { name: s.name, xs, ys };
}

export function drawChart(spec) {
  const series = (spec.series || []).map(columns).filter((s) => s.xs.length);
  const wrapper = document.createElement("div");
  if (!series.length) {
    wrapper.textContent = "No data to chart.";
    wrapper.className = "muted";
    return wrapper;
  }
  let xMin = Infinity, xMax = -Infinity, yMin = Infinity, yMax = -Infinity;
  for (const { xs, ys } of series) {
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i], y = ys[i];
      if (x < xMin) xMin = x; if (x > xMax) xMax = x;
      if (y < yMin) yMin = y; if (y > yMax) yMax = y;
    }
  }
  if (xMin === xMax) { xMin -= 1; xMax += 1; }
  if (yMin === yMax) { yMin -= Math.abs(yMin) * 0.05 || 1; yMax += Math.abs(yMax) * 0.05 || 1; }
  const sx = (x) => LEFT + ((x - xMin) / (xMax - xMin)) * (WIDTH - LEFT - RIGHT);
  const sy = (y) => HEIGHT - BOTTOM - ((y - yMin) / (yMax - yMin)) * (HEIGHT - TOP - BOTTOM);
  const svg = element("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT, role: "img" });
  const title = element("title");
  title.textContent = `${spec.title || "chart"}: ${series.length} series`;
  svg.append(title);
  svg.append(element("line", { x1: LEFT, y1: HEIGHT - BOTTOM, x2: WIDTH - RIGHT, y2: HEIGHT - BOTTOM, class: "axis" }));
  svg.append(element("line", { x1: LEFT, y1: TOP, x2: LEFT, y2: HEIGHT - BOTTOM, class: "axis" }));
  svg.append(label(format(yMax), { x: LEFT - 6, y: TOP + 4, "text-anchor": "end" }));
  svg.append(label(format(yMin), { x: LEFT - 6, y: HEIGHT - BOTTOM, "text-anchor": "end" }));
  svg.append(label(format(xMin), { x: LEFT, y: HEIGHT - BOTTOM + 16, "text-anchor": "start" }));
  svg.append(label(format(xMax), { x: WIDTH - RIGHT, y: HEIGHT - BOTTOM + 16, "text-anchor": "end" }));
  svg.append(label(spec.x || "", { x: (LEFT + WIDTH) / 2, y: HEIGHT - 6, "text-anchor": "middle" }));
  series.forEach((s, index) => {
    const colour = COLOURS[index % COLOURS.length];
    const { xs, ys } = s;
    const parts = new Array(xs.length);
    for (let i = 0; i < xs.length; i++) parts[i] = `${sx(xs[i]).toFixed(1)},${sy(ys[i]).toFixed(1)}`;
    const line = element("polyline", { points: parts.join(" "), stroke: colour, "data-series": s.name });
    svg.append(line);
    if (xs.length === 1) svg.append(element("circle", { cx: sx(xs[0]), cy: sy(ys[0]), r: 3, fill: colour }));
  });
  wrapper.append(svg);
  const legend = document.createElement("div");
  legend.className = "legend";
  series.forEach((s, index) => {
    const entry = document.createElement("span");
    entry.style.setProperty("--swatch", COLOURS[index % COLOURS.length]);
    entry.textContent = s.name;
    legend.append(entry);
  });
  wrapper.append(legend);
  return wrapper;
}

function readJson(id) {
  const source = document.getElementById(id);
  if (!source) return null;
  try { return JSON.parse(source.textContent); } catch { return null; }
}

// Set when every chart of the page is drawn (the UI benchmark and the browser tests read it).
export const CHART_DRAWN_MARK = "modelreg:chart-drawn";

// Inline data (<figure data-chart="id of a JSON script">) draws at once; fetched data
// (<figure data-chart-src="url">) draws when it arrives: histories are heavy to read, so pages
// never wait for them. A drawn figure gets data-state="drawn" (or "failed"); once all of the
// page's figures are drawn, performance.mark(CHART_DRAWN_MARK) records the moment.
export function drawCharts(root) {
  const inline = root.querySelectorAll("figure[data-chart]");
  inline.forEach((figure) => {
    const spec = readJson(figure.dataset.chart);
    if (spec) figure.append(drawChart(spec));
    figure.dataset.state = "drawn";
  });
  const fetched = [...root.querySelectorAll("figure[data-chart-src]")];
  if (!fetched.length) {
    if (inline.length) performance.mark(CHART_DRAWN_MARK);
    return;
  }
  let waiting = fetched.length, failed = false;
  const settled = (ok) => {
    failed ||= !ok;
    if (--waiting === 0 && !failed) performance.mark(CHART_DRAWN_MARK);
  };
  fetched.forEach(async (figure) => {
    const status = document.createElement("p");
    status.className = "muted";
    status.textContent = "Loading…";
    figure.append(status);
    try {
      // The answer carries an ETag from the versions' etags; the browser's cache revalidates it
      // (304 when no point was logged since), so a chart seen before is not read again.
      const response = await fetch(figure.dataset.chartSrc, { credentials: "same-origin", headers: { accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const spec = await response.json();
      status.remove();
      figure.append(drawChart(spec));
      figure.dataset.state = "drawn";
      settled(true);
    } catch (error) {
      status.textContent = `The chart could not be loaded (${error.message}); reload to try again.`;
      figure.dataset.state = "failed";
      settled(false);
    }
  });
}
