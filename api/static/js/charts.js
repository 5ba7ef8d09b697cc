// A thin wrapper over uPlot (vendored, global `uPlot`): line charts whose series
// may each have their own x values, sized to their container, themed from CSS.

export const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#9ca3af", "#0f766e"];

function cssVar(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

/** Merge series with different x into uPlot's aligned columns (null where a series has no point). */
export function align(list) {
  const xs = new Set();
  for (const s of list) for (const v of s.x) xs.add(v);
  const x = Array.from(xs).sort((a, b) => a - b);
  const at = new Map(x.map((v, i) => [v, i]));
  const ys = list.map((s) => {
    const y = new Array(x.length).fill(null);
    s.x.forEach((v, i) => {
      const yv = s.y[i];
      y[at.get(v)] = typeof yv === "number" && Number.isFinite(yv) ? yv : null;
    });
    return y;
  });
  return [x, ...ys];
}

function fmtTick(v) {
  if (v === null || v === undefined) return "";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

export class Chart {
  /**
   * container: an element (emptied); series: [{label, color, dash, width, points}];
   * xLabel: the x axis title.
   */
  constructor(container, { title, series, xLabel = "step", height = 230, xLog = false, bands = [], plugins = [] }) {
    this.container = container;
    this.container.classList.add("chart");
    this.container.replaceChildren();
    this.container.dataset.points = "0";
    this.container.dataset.xScale = xLog ? "log" : "linear";
    this.height = height;
    this.seriesDefs = series;
    this.xLog = xLog;
    const axis = {
      stroke: cssVar("--muted", "#888"),
      grid: { stroke: cssVar("--grid", "rgba(0,0,0,.08)"), width: 1 },
      ticks: { stroke: cssVar("--grid", "rgba(0,0,0,.08)"), width: 1 },
      values: (u, vals) => vals.map(fmtTick),
    };
    const opts = {
      title,
      width: Math.max(300, container.clientWidth || 600),
      height,
      // xLog: a log10 x axis (lr range test); bands: [[upperIdx, lowerIdx, fill]] over 0-based series
      scales: { x: xLog ? { time: false, distr: 3, log: 10 } : { time: false } },
      bands: bands.map(([hi, lo, fill]) => ({ series: [hi + 1, lo + 1], fill })),
      plugins,
      cursor: { drag: { x: true, y: false } },
      series: [
        { label: xLabel, value: (u, v) => (v === null ? "–" : fmtTick(v)) },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: s.color || PALETTE[i % PALETTE.length],
          width: s.width ?? 1.5,
          dash: s.dash,
          spanGaps: true,
          points: { show: s.points ?? false, size: 5 },
          value: (u, v) => (v === null ? "–" : fmtTick(v)),
        })),
      ],
      axes: [{ ...axis, label: xLabel, labelSize: 18, size: 36 }, { ...axis, size: 56 }],
    };
    this.plot = new uPlot(opts, [[], ...series.map(() => [])], container);
    // series marked legend: false (a band's edges) stay out of the legend
    const rows = this.plot.root.querySelectorAll(".u-legend .u-series");
    series.forEach((s, i) => {
      if (s.legend === false && rows[i + 1]) rows[i + 1].style.display = "none";
    });
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(container);
  }

  resize() {
    const w = this.container.clientWidth;
    if (w > 0 && Math.abs(w - this.plot.width) > 2) this.plot.setSize({ width: w, height: this.height });
  }

  /** list: one {x, y} per series, in the order given to the constructor. */
  set(list) {
    const data = align(list);
    let points = 0;
    for (const y of data.slice(1)) for (const v of y) if (v !== null) points++;
    this.plot.setData(data);
    // a log x scale can be left without a range by an earlier empty setData: set it
    const x = data[0];
    if (this.xLog && x.length && (this.plot.scales.x.min === null || this.plot.scales.x.max === null)) {
      this.plot.setScale("x", { min: x[0], max: x[x.length - 1] });
    }
    this.container.dataset.points = String(points);
  }

  destroy() {
    this.resizer.disconnect();
    this.plot.destroy();
  }
}
