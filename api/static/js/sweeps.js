// Sweeps: the list (#/sweeps) and one sweep (#/sweeps/{id}?metric=&curve=&x=):
// status and counts, the results table (mean ± std over seeds, Δ vs the row it is
// compared with, Welch's p and whether the difference is beyond seed noise), a
// heatmap for a grid over exactly two paths, the mean curve of each variant with a
// min–max band over its seeds (all, none or one variant's), and cancel.

import { api, listOf } from "./api.js";
import { Chart, PALETTE, setHashParams } from "./charts.js";
import { heatColor } from "./chartmath.js";
import { h, badge, num, age, errorText, toast } from "./util.js";
import { TERMINAL } from "./vocab.js";

const POLL_MS = 3000;
const TABLE_METRICS = { final_val_acc: "final val acc", best_val_acc: "best val acc", final_val_loss: "final val loss", final_val_ece: "final val ECE" };
const CURVE_METRICS = ["val_acc", "val_loss", "train_loss", "train_acc", "val_ece", "lr"];
const XS = { step: "step", fraction: "fraction of schedule" };
const NBSP = "\u00a0";
// lower is better for these: the heatmap darkens the other way
const LOWER_BETTER = new Set(["final_val_loss", "final_val_ece"]);

/** A grid over exactly two paths: {paths: [rows, cols], rows: [values], cols: [values]}, else null. */
export function gridAxes(sweep) {
  if (!sweep || sweep.kind !== "grid") return null;
  const paths = [...new Set(sweep.variants.flatMap((v) => Object.keys(v.change || {})))];
  if (paths.length !== 2) return null;
  const values = paths.map((p) => {
    const seen = new Map();
    for (const v of sweep.variants) {
      const key = JSON.stringify(v.change[p]);
      if (!seen.has(key)) seen.set(key, v.change[p]);
    }
    return [...seen.values()];
  });
  return { paths, rows: values[0], cols: values[1] };
}

function countsText(c) {
  if (!c) return "–";
  return Object.entries(c).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`).join(" · ") || "–";
}

function rgba(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

// ---------------------------------------------------------------------- list

export function mountSweeps(root) {
  let timer = null;
  let stopped = false;
  const note = h("div", { class: "formerror" });
  const tbody = h("tbody");
  const empty = h("div", { class: "empty" }, "Loading…");
  root.append(
    h("div", { class: "spread" }, h("h1", {}, "Sweeps"),
      h("span", { class: "muted small" }, h("a", { href: "#/sweeps/new", id: "new-sweep-link", class: "button" }, "New sweep"),
        " or POST /sweeps, ", h("code", {}, "tricklab sweep FILE"), ".")),
    note,
    h("div", { class: "panel", style: "padding:0" },
      h("table", { id: "sweeps-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Kind"), h("th", {}, "Status"),
          h("th", { class: "num" }, "Variants"), h("th", {}, "Jobs"), h("th", { class: "num" }, "Age"))),
        tbody),
      empty),
  );

  async function refresh() {
    clearTimeout(timer);
    try {
      const body = await api("/sweeps?limit=100");
      if (stopped) return;
      const sweeps = listOf(body);
      tbody.replaceChildren(...sweeps.map((s) => h("tr", { dataset: { id: s.id } },
        h("td", {}, h("a", { href: `#/sweeps/${encodeURIComponent(s.id)}`, class: "sweep-link" }, s.name || s.id), h("div", { class: "muted small mono" }, s.id)),
        h("td", {}, s.kind),
        h("td", {}, badge(s.status)),
        h("td", { class: "num" }, s.variants),
        h("td", { class: "small" }, countsText(s.counts)),
        h("td", { class: "num muted" }, age(s.created_at)))));
      empty.hidden = sweeps.length > 0;
      empty.textContent = "No sweeps yet.";
      note.textContent = "";
    } catch (e) {
      if (stopped) return;
      note.textContent = `Could not load sweeps: ${errorText(e)}`;
    }
    if (!stopped) timer = setTimeout(refresh, POLL_MS);
  }
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// ----------------------------------------------------------------- one sweep

export function mountSweep(root, params) {
  const id = params.id;
  const base = `/sweeps/${encodeURIComponent(id)}`;
  const abort = new AbortController();
  let stopped = false;
  let timer = null;
  let sweep = null;
  let chart = null;
  let tableMetric = TABLE_METRICS[params.metric] ? params.metric : "final_val_acc";
  let curveMetric = CURVE_METRICS.includes(params.curve) ? params.curve : "val_acc";
  let xMode = XS[params.x] ? params.x : "step";
  let bandOf = params.band ?? "all"; // "all", "none" or a variant index

  const head = h("div", { class: "spread" });
  const note = h("div", { class: "formerror" });
  const stats = h("div", { class: "panel", id: "sweep-status" });
  const tableSel = h("select", { id: "sweep-table-metric" }, Object.entries(TABLE_METRICS).map(([k, l]) => h("option", { value: k }, l)));
  tableSel.value = tableMetric;
  const table = h("div", { id: "sweep-table", class: "scroll" });
  const tableFoot = h("div", { class: "muted small", id: "sweep-table-note" });
  const metricSel = h("select", { id: "sweep-curve-metric" }, CURVE_METRICS.map((m) => h("option", { value: m }, m)));
  metricSel.value = curveMetric;
  const xSel = h("select", { id: "sweep-curve-x" }, Object.entries(XS).map(([k, l]) => h("option", { value: k }, l)));
  xSel.value = xMode;
  const bandSel = h("select", { id: "sweep-band", title: "Which variants draw their min–max band" });
  const heatPanel = h("div", { class: "panel", id: "sweep-heatmap-panel", hidden: true });
  const chartBox = h("div", { id: "sweep-chart" });
  const chartNote = h("div", { class: "muted small" });
  root.append(
    head, note, stats,
    h("div", { class: "panel" },
      h("div", { class: "spread" }, h("h3", {}, "Results"), h("label", { class: "small" }, "Δ and p on ", tableSel)),
      table, tableFoot),
    heatPanel,
    h("div", { class: "panel" },
      h("div", { class: "spread" }, h("h3", {}, "Curves: mean over seeds, band = min–max"),
        h("div", { class: "row" }, h("label", {}, "Metric ", metricSel), h("label", {}, "x ", xSel), h("label", {}, "Band ", bandSel))),
      chartBox, chartNote),
  );

  function keepUrl() {
    // setHashParams keeps the chart controls' smooth and logy
    setHashParams({ metric: tableMetric, curve: curveMetric, x: xMode, band: bandOf === "all" ? null : bandOf });
  }
  bandSel.addEventListener("change", () => { bandOf = bandSel.value; keepUrl(); if (lastCurves) drawCurves(lastCurves); });
  let lastCurves = null;
  tableSel.addEventListener("change", () => { tableMetric = tableSel.value; keepUrl(); refresh(); });
  metricSel.addEventListener("change", () => { curveMetric = metricSel.value; keepUrl(); refresh(); });
  xSel.addEventListener("change", () => { xMode = xSel.value; keepUrl(); refresh(); });

  function renderHead() {
    const actions = [];
    if (!TERMINAL.has(sweep.status)) actions.push(h("button", { type: "button", class: "danger", id: "cancel-sweep", onclick: cancel }, "Cancel sweep"));
    const ids = sweep.variants.flatMap((v) => v.jobs.filter((j) => j.status !== "pending").map((j) => j.job_id));
    if (ids.length) actions.push(h("a", { class: "button", href: `#/compare?ids=${ids.map(encodeURIComponent).join(",")}&metric=val_acc&x=fraction` }, "Compare jobs"));
    head.replaceChildren(
      h("div", {},
        h("div", { class: "row" }, h("h1", { id: "sweep-name" }, sweep.name || sweep.id), badge(sweep.status), h("span", { class: "muted" }, sweep.kind)),
        h("div", { class: "muted small mono" }, sweep.id, " · created ", age(sweep.created_at))),
      h("div", { class: "row" }, ...actions),
    );
    const c = sweep.counts || {};
    stats.replaceChildren(
      h("div", { class: "stats" },
        ...["pending", "queued", "running", "succeeded", "failed", "cancelled"].map((k) =>
          h("div", { class: "stat" }, h("div", { class: "label" }, k), h("div", { class: "value", dataset: { count: k } }, c[k] ?? 0))),
        h("div", { class: "stat" }, h("div", { class: "label" }, "variants × seeds"), h("div", { class: "value" }, `${sweep.variants.length} × ${sweep.seeds.length}`)),
        h("div", { class: "stat" }, h("div", { class: "label" }, "max concurrent"), h("div", { class: "value" }, sweep.max_concurrent ?? "–"))),
      h("div", { class: "row small", style: "margin-top:10px" }, h("span", { class: "muted" }, "Jobs:"),
        ...sweep.variants.flatMap((v, i) => v.jobs.map((j) => j.status === "pending"
          ? h("span", { class: "muted" }, `${v.name} s${j.seed} (pending)`)
          : h("a", { href: `#/jobs/${encodeURIComponent(j.job_id)}`, class: "sweep-child", style: `color:${PALETTE[i % PALETTE.length]}` }, `${v.name} s${j.seed}`, " ", badge(j.status))))),
    );
  }

  function pm(s, scale = 1, digits = 2) {
    if (!s || s.mean === null || s.mean === undefined) return "–";
    const m = (s.mean * scale).toFixed(digits);
    // one line: "97.59 ± 0.43" with non-breaking spaces (and nowrap cells, app.css)
    return s.std === null || s.std === undefined ? m : `${m}${NBSP}±${NBSP}${(s.std * scale).toFixed(digits)}`;
  }

  function noise(d) {
    if (!d || d.delta === null || d.delta === undefined) return h("td", {}, "");
    if (d.p === null || d.p === undefined) return h("td", { class: "muted small", title: d.note || "" }, "n/a (needs ≥ 2 seeds)");
    return d.significant
      ? h("td", {}, h("span", { class: "sig yes", title: `p < ${d.alpha}` }, "beyond seed noise"))
      : h("td", {}, h("span", { class: "sig no", title: `p ≥ ${d.alpha}` }, "within seed noise"));
  }

  function renderTable() {
    const pctMetric = tableMetric.endsWith("acc");
    const rows = sweep.results || [];
    table.replaceChildren(h("table", { id: "sweep-results" },
      h("thead", {}, h("tr", {},
        h("th", {}, "Variant"), h("th", { class: "num" }, "n"),
        h("th", { class: "num" }, "final val acc %"), h("th", { class: "num" }, "best val acc %"),
        h("th", { class: "num" }, "val loss"), h("th", { class: "num" }, "val ECE %"), h("th", { class: "num" }, "time s"),
        h("th", { class: "num" }, `Δ ${TABLE_METRICS[tableMetric]}`), h("th", {}, "vs"), h("th", { class: "num" }, "Welch p"), h("th", {}, "seed noise"))),
      h("tbody", {}, rows.map((r, i) => {
        const d = r.diff;
        const delta = d && typeof d.delta === "number" ? (pctMetric ? `${(d.delta * 100 >= 0 ? "+" : "")}${(d.delta * 100).toFixed(2)} pp` : `${d.delta >= 0 ? "+" : ""}${num(d.delta)}`) : "";
        return h("tr", { dataset: { variant: r.variant } },
          h("td", {}, h("span", { style: `color:${PALETTE[i % PALETTE.length]}` }, "■ "), r.name,
            r.change && Object.keys(r.change).length ? h("div", { class: "muted small mono" }, JSON.stringify(r.change)) : ""),
          h("td", { class: "num" }, `${r.n_done}/${r.n_seeds}`),
          h("td", { class: "num" }, pm(r.final_val_acc, 100)),
          h("td", { class: "num" }, pm(r.best_val_acc, 100)),
          h("td", { class: "num" }, pm(r.final_val_loss, 1, 3)),
          h("td", { class: "num" }, pm(r.final_val_ece, 100)),
          h("td", { class: "num" }, pm(r.train_time_s, 1, 1)),
          h("td", { class: "num" }, delta),
          h("td", { class: "small" }, d ? d.vs_name : "baseline"),
          h("td", { class: "num" }, d && typeof d.p === "number" ? d.p.toPrecision(3) : ""),
          noise(d));
      }))));
    tableFoot.textContent =
      `Δ: difference of means from the row named under "vs" (ablation: the previous row; leave-one-out: the full recipe; grid: the first variant). ` +
      `p: ${sweep.test || "Welch's t-test"} over seeds; "beyond seed noise" when p < 0.05. ± is the sample std over seeds.`;
  }

  /** A grid over two paths: one cell per grid point, coloured by the table metric's mean. */
  function renderHeatmap() {
    const axes = gridAxes(sweep);
    heatPanel.hidden = !axes;
    if (!axes) return;
    const pctMetric = !TABLE_METRICS[tableMetric].includes("loss");
    const byVariant = new Map((sweep.results || []).map((r) => [r.variant, r]));
    const cellOf = new Map(sweep.variants.map((v) => [JSON.stringify([v.change[axes.paths[0]], v.change[axes.paths[1]]]), byVariant.get(v.index)]));
    const means = [...byVariant.values()].map((r) => r[tableMetric] && r[tableMetric].mean).filter((m) => typeof m === "number");
    const lo = Math.min(...means);
    const hi = Math.max(...means);
    const grid = h("div", { class: "sweep-heatmap", id: "sweep-heatmap", style: `grid-template-columns: auto repeat(${axes.cols.length}, minmax(90px, 150px))` },
      h("div", { class: "hm-axis hm-title", title: `rows: ${axes.paths[0]}, columns: ${axes.paths[1]}` },
        h("span", { class: "hm-cols" }, `${axes.paths[1]} →`), h("span", { class: "hm-rows" }, `${axes.paths[0]} ↓`)),
      ...axes.cols.map((c) => h("div", { class: "hm-axis", dataset: { col: JSON.stringify(c) } }, JSON.stringify(c))));
    for (const rv of axes.rows) {
      grid.append(h("div", { class: "hm-axis", dataset: { row: JSON.stringify(rv) } }, JSON.stringify(rv)));
      for (const cv of axes.cols) {
        const r = cellOf.get(JSON.stringify([rv, cv]));
        const s = r && r[tableMetric];
        const m = s && typeof s.mean === "number" ? s.mean : null;
        let t = m === null || hi === lo ? 0.5 : (m - lo) / (hi - lo);
        if (LOWER_BETTER.has(tableMetric)) t = 1 - t;
        const scale = pctMetric ? 100 : 1;
        const digits = pctMetric ? 2 : 3;
        grid.append(h("div", {
          class: "hm-cell",
          dataset: { variant: r ? r.variant : "", mean: m ?? "" },
          title: r ? `${r.name}: ${r.n_done}/${r.n_seeds} seeds done` : "no result yet",
          style: m === null ? "background: var(--bg)" : `background:${heatColor(t)};color:${t > 0.55 ? "#fff" : "#111827"}`,
        },
        m === null ? "–" : (m * scale).toFixed(digits),
        h("span", { class: "hm-std" }, s && typeof s.std === "number" ? `±${NBSP}${(s.std * scale).toFixed(digits)}` : r ? `n = ${r.n_done}` : "")));
      }
    }
    const better = LOWER_BETTER.has(tableMetric) ? "lower" : "higher";
    heatPanel.replaceChildren(
      h("h3", {}, `Grid: ${TABLE_METRICS[tableMetric]}${pctMetric ? " %" : ""}, mean ± std over seeds`),
      grid,
      h("div", { class: "hm-legend muted small" }, means.length ? `${better} is darker:` : "no results yet", h("span", { class: "hm-ramp" })),
    );
  }

  function drawCurves(body) {
    lastCurves = body;
    if (chart) chart.destroy();
    const vs = body.variants || [];
    const names = JSON.stringify(vs.map((v) => v.name));
    if (bandSel.dataset.names !== names) { // rebuilt only when the variants change: a poll leaves an open list alone
      bandSel.dataset.names = names;
      bandSel.replaceChildren(h("option", { value: "all" }, "all"), h("option", { value: "none" }, "none"),
        ...vs.map((v, i) => h("option", { value: String(i) }, v.name)));
    }
    if (![...bandSel.options].some((o) => o.value === bandOf)) bandOf = "all";
    bandSel.value = bandOf;
    const series = [];
    const bands = [];
    const data = [];
    // many variants: fainter bands, so that the means stay readable where they overlap
    const fill = vs.length > 3 ? 0.07 : 0.15;
    vs.forEach((v, i) => {
      const color = PALETTE[i % PALETTE.length];
      const at = series.length;
      const banded = bandOf === "all" || bandOf === String(i);
      series.push({ label: v.name, color, width: 2, points: curveMetric.startsWith("val_") });
      series.push({ label: `${v.name} max`, color: rgba(color, banded ? 0.35 : 0), width: 0.5, legend: false });
      series.push({ label: `${v.name} min`, color: rgba(color, banded ? 0.35 : 0), width: 0.5, legend: false });
      if (banded) bands.push([at + 1, at + 2, rgba(color, bandOf === "all" ? fill : 0.2)]);
      data.push({ x: v.x, y: v.mean }, { x: v.x, y: v.max }, { x: v.x, y: v.min });
    });
    chart = new Chart(chartBox, { title: `${curveMetric} by ${XS[xMode]}`, xLabel: XS[xMode], height: 340, series, bands, controls: { x: false, key: "sweep" } });
    chart.set(data);
    const n = vs.map((v) => `${v.name}: ${v.seeds} seed${v.seeds === 1 ? "" : "s"}`).join(" · ");
    chartNote.textContent = vs.some((v) => v.x.length) ? n : "No points yet.";
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      sweep = await api(`${base}?metric=${tableMetric}`, { signal: abort.signal });
      if (stopped) return;
      renderHead();
      renderTable();
      renderHeatmap();
      const curves = await api(`${base}/curves?metric=${curveMetric}&x=${xMode}&max_points=400`, { signal: abort.signal });
      if (stopped) return;
      drawCurves(curves);
      note.textContent = "";
    } catch (e) {
      if (stopped || e.name === "AbortError") return;
      note.textContent = e.status === 404 ? `No sweep ${id}.` : `Could not load the sweep: ${errorText(e)}`;
      if (e.status === 404) return;
    }
    if (!stopped && !(sweep && TERMINAL.has(sweep.status))) timer = setTimeout(refresh, POLL_MS);
  }

  async function cancel() {
    if (!confirm("Cancel this sweep? Queued and running jobs are cancelled; pending ones never start.")) return;
    try {
      await api(`${base}/cancel`, { method: "POST" });
      toast("Sweep cancel requested");
    } catch (e) {
      toast(`Cancel failed: ${e.message}`, 5000);
    }
    refresh();
  }

  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
    abort.abort();
    if (chart) chart.destroy();
  };
}
