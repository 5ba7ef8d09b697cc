// A thin wrapper over uPlot (vendored, global `uPlot`): line charts whose series
// may each have their own x values, sized to their container, themed from CSS.
//
// Every chart gets a y range that ignores diverged points (marked, with a note) and
// a "no data" note when empty. Training-curve charts also get controls (`controls`,
// on by default for a titled chart by step): one toolbar per page (EMA smoothing,
// the x axis) that drives all its charts, a log y toggle per chart, drag-to-zoom
// synced across the page's charts (double-click resets). Their state lives in the
// URL hash query (smooth=0.6&logy=loss,lr&x=epoch) so a view can be shared.

import { api } from "./api.js";
import { ema, robustRange, stepsTo, stepsToWall, wholeTicks } from "./chartmath.js";
import { h, stepsPerEpoch, totalSteps } from "./util.js";

export const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#9ca3af", "#0f766e"];

export const X_MODES = { step: "step", epoch: "epoch", fraction: "fraction of schedule", wall: "wall time (s)" };
const NO_WALL = "Wall time needs the job's clock (series sys_time, written by the worker at each log point): none yet";
const DIVERGED = "#dc2626";

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

// ------------------------------------------------------------- the URL hash query

function hashParts() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const at = raw.indexOf("?");
  return { path: at < 0 ? raw : raw.slice(0, at), query: at < 0 ? "" : raw.slice(at + 1) };
}

/** Read one parameter of the hash query. */
export function hashParam(key) {
  return new URLSearchParams(hashParts().query).get(key);
}

/** Set (or, with null or "", drop) hash query parameters, keeping the others as they are written. */
export function setHashParams(changes) {
  const { path, query } = hashParts();
  const keep = query.split("&").filter((kv) => kv && !(decodeURIComponent(kv.split("=")[0]) in changes));
  for (const [k, v] of Object.entries(changes)) {
    if (v !== null && v !== undefined && v !== "") keep.push(`${k}=${encodeURIComponent(String(v)).replace(/%2C/g, ",")}`);
  }
  history.replaceState(null, "", `#${path}${keep.length ? `?${keep.join("&")}` : ""}`);
}

// ------------------------------------------------------- one page's charts together

const groups = new Map();
let groupSeq = 0;

/** The charts of one page (hash path): shared smoothing, x axis, zoom and cursor. */
class ChartGroup {
  constructor(path) {
    this.path = path;
    this.charts = new Set();
    this.syncKey = `tricklab-${++groupSeq}`;
    this.x = "step";
    this.schedule = null;
    this.clock = null; // {x: steps, y: unix times, t0}: the wall-time x axis
    this.toolbar = null;
    this.dropTimer = null;
  }

  /** The state from the URL: every change is written there, so this is also what was shown. */
  readUrl() {
    const smooth = Number.parseFloat(hashParam("smooth"));
    this.smooth = Number.isFinite(smooth) ? Math.min(Math.max(smooth, 0), 0.99) : 0;
    this.logy = new Set((hashParam("logy") || "").split(",").filter(Boolean));
    this.xParam = hashParam("x");
    this.x = this.usable(this.xParam) ? this.xParam : "step";
  }

  /** Whether x mode `mode` can be drawn now: epoch and fraction need the schedule, wall the clock. */
  usable(mode) {
    if (mode === "epoch" || mode === "fraction") return Boolean(this.schedule);
    if (mode === "wall") return Boolean(this.clock && this.clock.x.length);
    return mode === "step";
  }

  add(chart) {
    clearTimeout(this.dropTimer);
    // a page that rebuilds its chart keeps its toolbar (and zoom); a page mounted
    // again on the same path (a new hash query) starts from the URL
    const same = this.toolbar && this.toolbar.isConnected;
    if (!this.charts.size) this.readUrl();
    if (!same) {
      if (this.toolbar) this.toolbar.remove();
      this.zoom = null; // {min, max} of x, or null: the full range
      this.makeToolbar(chart);
    }
    this.charts.add(chart);
    if (chart.ctl.schedule) this.setSchedule(chart.ctl.schedule);
    else if (chart.ctl.x && !this.schedule) this.scheduleFromRoute();
  }

  remove(chart) {
    this.charts.delete(chart);
    // a page that rebuilds its chart (destroy, then new) keeps the toolbar and state
    if (!this.charts.size) {
      this.dropTimer = setTimeout(() => {
        if (this.charts.size) return;
        if (this.toolbar) this.toolbar.remove();
        if (groups.get(this.path) === this) groups.delete(this.path);
      }, 0);
    }
  }

  makeToolbar(chart) {
    const slider = h("input", { type: "range", min: "0", max: "0.99", step: "0.01", value: String(this.smooth), class: "chart-smooth", "aria-label": "Smoothing" });
    const shown = h("span", { class: "mono small chart-smooth-value" }, this.smooth.toFixed(2));
    slider.addEventListener("input", () => {
      this.smooth = Number(slider.value);
      shown.textContent = this.smooth.toFixed(2);
      setHashParams({ smooth: this.smooth ? this.smooth : null });
      for (const c of this.charts) c.redraw();
    });
    const parts = [h("label", { class: "row", title: "Exponential moving average (debiased, as TensorBoard); the raw curve stays faint behind" }, "Smoothing ", slider, shown)];
    if (chart.ctl.x) {
      this.xSel = h("select", { class: "chart-x", "aria-label": "x axis" },
        Object.entries(X_MODES).map(([k, l]) => h("option", { value: k }, l)));
      this.xSel.addEventListener("change", () => this.setX(this.xSel.value));
      parts.push(h("label", {}, "x ", this.xSel));
      this.updateXOptions();
    }
    parts.push(h("span", { class: "muted small" }, "drag to zoom · double-click to reset"));
    this.toolbar = h("div", { class: "chart-toolbar row" }, ...parts);
    const anchor = chart.ctl.toolbarBefore || chart.container.closest(".charts") || chart.container;
    anchor.before(this.toolbar);
  }

  /** Epoch and fraction need the job's schedule, wall time the job's clock. */
  updateXOptions() {
    if (!this.xSel) return;
    for (const o of this.xSel.options) {
      o.disabled = !this.usable(o.value);
      o.title = !o.disabled ? "" : o.value === "wall" ? NO_WALL : "needs the job's steps per epoch (loading)";
    }
    this.xSel.value = this.x;
  }

  setX(mode) {
    if (!X_MODES[mode] || !this.usable(mode)) return;
    this.x = mode;
    this.zoom = null;
    setHashParams({ x: mode === "step" ? null : mode });
    this.updateXOptions();
    for (const c of this.charts) if (c.ctl.x && c.plot) c.rebuild();
  }

  setSchedule(s) {
    const spe = s.stepsPerEpoch ?? stepsPerEpoch(s);
    const total = s.totalSteps ?? totalSteps(s);
    if (!spe && !total) return;
    this.schedule = { stepsPerEpoch: spe || null, totalSteps: total || null };
    const want = this.xParam;
    this.updateXOptions();
    if (want && want !== this.x && X_MODES[want]) this.setX(want);
  }

  /**
   * The job's clock, {x: steps, y: unix times} (series sys_time), and the unix time its
   * wall axis starts at (the first claim; else the first point): enables x = wall time.
   */
  setClock(clock, t0 = null) {
    if (!clock || !clock.x || !clock.x.length) return;
    const first = clock.y[0];
    const had = this.usable("wall");
    this.clock = { x: clock.x, y: clock.y, t0: t0 !== null && t0 <= first ? t0 : first };
    if (!had) {
      this.updateXOptions();
      if (this.xParam === "wall" && this.x !== "wall") this.setX("wall");
    } else if (this.x === "wall") {
      for (const ch of this.charts) if (ch.ctl.x && ch.plot) ch.redraw();
    }
  }

  /** On a job page (#/jobs/{id}) the x modes need its plan: one GET of the job. */
  scheduleFromRoute() {
    if (this.asked) return;
    this.asked = true;
    const m = this.path.match(/^\/jobs\/([^/]+)$/);
    if (!m) return;
    api(`/jobs/${m[1]}`).then((job) => this.setSchedule(job)).catch(() => {});
  }

  /** A user zoom on one chart: the same x window on every other. */
  zoomed(from, min, max) {
    this.zoom = { min, max };
    for (const c of this.charts) if (c !== from) c.plot.setScale("x", { min, max });
  }

  /** Double-click on any chart: every chart of the page back to its full x range. */
  resetZoom() {
    this.zoom = null;
    for (const c of this.charts) c.redraw();
  }
}

function groupFor(path) {
  let g = groups.get(path);
  if (!g) {
    g = new ChartGroup(path);
    groups.set(path, g);
  }
  return g;
}

/** controls: undefined → on for a titled, linear chart by step (the training curves). */
function resolveControls(o, container) {
  const auto = o.controls === undefined && Boolean(o.title) && !o.xLog && (o.xLabel ?? "step") === "step";
  if (!(o.controls || auto)) return null;
  const c = typeof o.controls === "object" && o.controls ? o.controls : {};
  return {
    x: c.x ?? (o.xLabel ?? "step") === "step",
    key: c.key || (container.id || o.title || "chart").replace(/^chart-/, ""),
    schedule: c.schedule || null,
    toolbarBefore: c.toolbarBefore || null,
  };
}

// ------------------------------------------------------------------------ Chart

export class Chart {
  /**
   * container: an element (emptied); series: [{label, color, dash, width, points, legend}];
   * xLabel: the x axis title; xTicks: "whole" for whole-number x ticks (epochs);
   * controls: true, false or {x, key, schedule: {stepsPerEpoch, totalSteps} | job, toolbarBefore}.
   */
  constructor(container, opts) {
    const { series, height = 230, xLog = false } = opts;
    this.opts = opts;
    this.container = container;
    this.container.classList.add("chart");
    this.container.replaceChildren();
    this.container.dataset.points = "0";
    this.container.dataset.xScale = xLog ? "log" : "linear";
    this.height = height;
    this.seriesDefs = series;
    this.xLog = xLog;
    this.list = series.map(() => ({ x: [], y: [] }));
    this.ctl = resolveControls(opts, container);
    // each visible series gets a faint raw copy (drawn first, behind) to smooth against
    this.rawOf = this.ctl ? series.map((s, i) => (s.legend === false ? -1 : i)).filter((i) => i >= 0) : [];
    this.note = h("span", { class: "chart-note" });
    this.empty = h("div", { class: "chart-empty", hidden: true }, "no data");
    if (this.ctl) {
      this.group = groupFor(hashParts().path);
      this.group.add(this);
      this.logBox = h("input", { type: "checkbox", class: "chart-logy" });
      this.logBox.checked = this.group.logy.has(this.ctl.key);
      this.logBox.addEventListener("change", () => this.setLogY(this.logBox.checked));
      container.append(h("div", { class: "chart-bar" }, h("label", { class: "small" }, this.logBox, " log y")));
    }
    this.build();
    container.append(this.empty, this.note);
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(container);
  }

  get logY() {
    return Boolean(this.ctl && this.group.logy.has(this.ctl.key));
  }

  get xMode() {
    return this.ctl && this.ctl.x ? this.group.x : "step";
  }

  build() {
    const { title, xLabel = "step", bands = [], plugins = [], xTicks } = this.opts;
    const series = this.seriesDefs;
    const xMode = this.xMode;
    const label = this.ctl && this.ctl.x ? X_MODES[xMode] : xLabel;
    const axis = {
      stroke: cssVar("--muted", "#888"),
      grid: { stroke: cssVar("--grid", "rgba(0,0,0,.08)"), width: 1 },
      ticks: { stroke: cssVar("--grid", "rgba(0,0,0,.08)"), width: 1 },
      values: (u, vals) => vals.map(fmtTick),
    };
    const whole = xTicks === "whole" || xMode === "epoch";
    const xAxis = { ...axis, label, labelSize: 18, size: 36 };
    if (whole) xAxis.splits = (u, ai, min, max) => wholeTicks(min, max, Math.max(2, u.bbox.width / (devicePixelRatio || 1) / 60));
    const at = 1 + this.rawOf.length; // plot index of the first caller series
    const line = (s, i) => ({
      label: s.label,
      stroke: s.color || PALETTE[i % PALETTE.length],
      width: s.width ?? 1.5,
      dash: s.dash,
      spanGaps: true,
      points: { show: s.points ?? false, size: 5 },
      value: (u, v) => (v === null ? "–" : fmtTick(v)),
    });
    const raw = this.rawOf.map((i) => ({ ...line(series[i], i), label: `${series[i].label} (raw)`, alpha: 0.25, width: 1, points: { show: false } }));
    const group = this.group;
    const opts = {
      title: this.opts.title,
      width: Math.max(300, this.container.clientWidth || 600),
      height: this.height,
      // xLog: a log10 x axis (lr range test); bands: [[upperIdx, lowerIdx, fill]] over 0-based series
      scales: {
        x: this.xLog ? { time: false, distr: 3, log: 10 } : { time: false },
        y: { distr: this.logY ? 3 : 1, log: 10, range: (u, lo, hi) => this.yRange(lo, hi) },
      },
      bands: bands.map(([hi, lo, fill]) => ({ series: [hi + at, lo + at], fill })),
      plugins,
      cursor: {
        drag: { x: true, y: false },
        ...(group ? { sync: { key: group.syncKey }, bind: { dblclick: () => () => { group.resetZoom(); return null; } } } : {}),
      },
      hooks: {
        // uPlot fires this after a microtask, for setData too: only a drag begun on this
        // chart (this.dragging, cleared after the mouseup's microtasks) is a user zoom
        setScale: [(u, key) => {
          if (key === "x" && group && this.dragging && u === this.plot) group.zoomed(this, u.scales.x.min, u.scales.x.max);
        }],
        draw: [(u) => this.markDiverged(u)],
      },
      series: [{ label, value: (u, v) => (v === null ? "–" : fmtTick(v)) }, ...raw, ...series.map(line)],
      // the y axis as wide as its longest label (a fixed width cut "1.0e+12" to "0e+12")
      axes: [xAxis, { ...axis, size: (u, values) => 18 + 7 * Math.max(3, ...(values || []).map((v) => String(v).length)) }],
    };
    if (title === undefined) delete opts.title;
    this.plot = new uPlot(opts, [[], ...opts.series.slice(1).map(() => [])], this.container);
    this.plot.over.addEventListener("mousedown", () => {
      this.dragging = true;
      document.addEventListener("mouseup", () => setTimeout(() => { this.dragging = false; }, 0), { once: true });
    });
    this.container.uplot = this.plot; // for tests and the console
    this.container.chart = this;
    this.empty.before(this.plot.root);
    // series marked legend: false (a band's edges) and the raw copies stay out of the legend
    const rows = this.plot.root.querySelectorAll(".u-legend .u-series");
    this.rawOf.forEach((_, k) => { if (rows[k + 1]) rows[k + 1].style.display = "none"; });
    series.forEach((s, i) => {
      if (s.legend === false && rows[i + at]) rows[i + at].style.display = "none";
    });
    this.container.dataset.logy = this.logY ? "1" : "0";
    this.container.dataset.xMode = this.ctl && this.ctl.x ? xMode : "";
    this.draw();
  }

  /** A new uPlot with the same data (log y and the x axis are fixed at construction). */
  rebuild() {
    this.plot.destroy();
    this.build();
  }

  resize() {
    const w = this.container.clientWidth;
    if (w > 0 && Math.abs(w - this.plot.width) > 2) this.plot.setSize({ width: w, height: this.height });
  }

  setLogY(on) {
    const g = this.group;
    if (on) g.logy.add(this.ctl.key);
    else g.logy.delete(this.ctl.key);
    setHashParams({ logy: [...g.logy].join(",") || null });
    this.rebuild();
  }

  /** The y range: of the bulk of the drawn values, diverged ones left off-scale. */
  yRange(lo, hi) {
    const b = this.bulk;
    if (b) {
      lo = lo === null || lo < b.min ? b.min : lo;
      hi = hi === null || hi > b.max ? b.max : hi;
    }
    if (lo === null || hi === null || !Number.isFinite(lo) || !Number.isFinite(hi)) return this.logY ? [1, 10] : [0, 1];
    return this.logY ? uPlot.rangeLog(lo, hi, 10, true) : uPlot.rangeNum(lo, hi, 0.1, true);
  }

  /** A job (or {stepsPerEpoch, totalSteps}): enables the epoch and fraction x axes of the page. */
  setSchedule(s) {
    if (this.group && s) this.group.setSchedule(s);
  }

  /** The job's clock (series sys_time): enables the wall-time x axis of the page. */
  setClock(clock, t0 = null) {
    if (this.group) this.group.setClock(clock, t0);
  }

  /** list: one {x, y} per series, in the order given to the constructor. */
  set(list) {
    this.list = list.map((s) => ({ x: s.x || [], y: s.y || [] }));
    this.draw();
  }

  redraw() {
    this.draw();
  }

  draw() {
    const mode = this.xMode;
    const sched = (this.group && this.group.schedule) || {};
    const clock = this.group && this.group.clock;
    const toX = (xs) =>
      mode === "step" ? xs : mode === "wall" ? stepsToWall(xs, clock, clock ? clock.t0 : null) : stepsTo(xs, mode, sched);
    const list = this.list.map((s) => ({ x: toX(s.x), y: s.y }));
    const data = align(list);
    let points = 0;
    for (const y of data.slice(1)) for (const v of y) if (v !== null) points++;
    // non-finite values became null in align: count them as diverged too
    let nonFinite = 0;
    for (const s of list) for (const v of s.y) if (v !== null && v !== undefined && !Number.isFinite(v)) nonFinite++;
    const all = data.slice(1).flat();
    const r = robustRange(all, { log: this.logY });
    this.bulk = r && r.diverged ? r : null;
    this.divergedX = [];
    const alpha = this.group ? this.group.smooth : 0;
    const shown = data.slice(1).map((y) => this.clip(y, data[0], r));
    const smoothed = alpha > 0 ? shown.map((y) => this.clip(ema(y, alpha), null, r)) : shown;
    const raws = this.rawOf.map((i) => (alpha > 0 ? shown[i] : shown[i].map(() => null)));
    const out = [data[0], ...raws, ...smoothed];
    if (this.group && this.group.zoom) {
      this.plot.setData(out, false); // keep the page's zoom across polls
      this.plot.setScale("x", this.group.zoom);
    } else {
      this.plot.setData(out);
    }
    // a log x scale can be left without a range by an earlier empty setData: set it
    const x = data[0];
    if (this.xLog && x.length && (this.plot.scales.x.min === null || this.plot.scales.x.max === null)) {
      this.plot.setScale("x", { min: x[0], max: x[x.length - 1] });
    }
    const off = (r ? r.diverged : 0) + nonFinite;
    this.container.dataset.points = String(points);
    this.container.dataset.smooth = String(alpha);
    this.container.dataset.diverged = String(off);
    this.note.textContent = off ? `⚠ ${off} diverged point${off === 1 ? "" : "s"} off-scale` : "";
    this.note.title = off ? "Non-finite or more than 1000× the bulk of the values: left out of the y range; the line leaves the plot there (red marks at the top)." : "";
    this.empty.hidden = points > 0;
  }

  /** Diverged values pulled to just past the edge (the line leaves the plot, clipped); ≤ 0 dropped on log y. */
  clip(y, xs, r) {
    const log = this.logY;
    if (!log && (!r || !r.diverged)) return y;
    const span = r ? r.max - r.min || Math.abs(r.max) || 1 : 1;
    const top = r && (log ? r.max * 1e3 : r.max + span);
    const bottom = r && (log ? r.min / 1e3 : r.min - span);
    return y.map((v, i) => {
      if (v === null) return null;
      if (log && v <= 0) return null;
      if (!r || Math.abs(v) <= r.limit) return v;
      if (xs) this.divergedX.push(xs[i]);
      return v > 0 ? top : bottom;
    });
  }

  /** Small red ticks at the top edge where points went off-scale. */
  markDiverged(u) {
    if (!this.divergedX || !this.divergedX.length) return;
    const ctx = u.ctx;
    const { left, top, width } = u.bbox;
    const s = 5 * (devicePixelRatio || 1);
    ctx.save();
    ctx.fillStyle = DIVERGED;
    for (const xv of this.divergedX) {
      const px = u.valToPos(xv, "x", true);
      if (!(px >= left && px <= left + width)) continue;
      ctx.beginPath();
      ctx.moveTo(px - s, top + s * 1.6);
      ctx.lineTo(px + s, top + s * 1.6);
      ctx.lineTo(px, top);
      ctx.closePath();
      ctx.fill();
    }
    ctx.restore();
  }

  destroy() {
    this.resizer.disconnect();
    this.plot.destroy();
    if (this.group) this.group.remove(this);
  }
}
