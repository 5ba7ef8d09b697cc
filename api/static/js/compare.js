// Compare (#/compare?ids=a,b,c&metric=val_acc&x=epoch): overlay one metric of
// several jobs, x by step, epoch or fraction of the schedule, plus a table of
// final and best metrics.

import { api, listOf } from "./api.js";
import { Chart, PALETTE } from "./charts.js";
import { h, badge, num, pct, stepsPerEpoch, totalSteps, errorText } from "./util.js";
import { TERMINAL } from "./vocab.js";

const METRICS = ["val_acc", "val_loss", "train_loss", "train_acc", "val_ece", "lr"];
const XS = { step: "step", epoch: "epoch", fraction: "fraction of schedule" };
const POLL_MS = 5000;

export function mountCompare(root, params) {
  const ids = (params.ids || "").split(",").map(decodeURIComponent).filter(Boolean);
  let metric = METRICS.includes(params.metric) ? params.metric : "val_acc";
  let xMode = XS[params.x] ? params.x : "epoch";
  const abort = new AbortController();
  let stopped = false;
  let timer = null;
  let chart = null;
  let jobs = [];
  let curves = {};

  const note = h("div", { class: "formerror" });
  if (!ids.length) {
    root.append(h("h1", {}, "Compare"), picker());
    return () => abort.abort();
  }

  const metricSel = h("select", { id: "compare-metric" }, METRICS.map((m) => h("option", { value: m }, m)));
  metricSel.value = metric;
  const xSel = h("select", { id: "compare-x" }, Object.entries(XS).map(([k, l]) => h("option", { value: k }, l)));
  xSel.value = xMode;
  const chartBox = h("div", { id: "compare-chart" });
  const table = h("div", { id: "compare-table" });
  root.append(
    h("div", { class: "spread" },
      h("h1", {}, `Compare ${ids.length} job${ids.length === 1 ? "" : "s"}`),
      h("div", { class: "row" }, h("label", {}, "Metric ", metricSel), h("label", {}, "x ", xSel))),
    note,
    h("div", { class: "panel" }, chartBox),
    h("div", { class: "panel", style: "padding:0" }, table),
  );

  function keepUrl() {
    history.replaceState(null, "", `#/compare?ids=${ids.map(encodeURIComponent).join(",")}&metric=${metric}&x=${xMode}`);
  }
  metricSel.addEventListener("change", () => { metric = metricSel.value; keepUrl(); curves = {}; refresh(); });
  xSel.addEventListener("change", () => { xMode = xSel.value; keepUrl(); draw(); });

  function xOf(job, steps) {
    if (xMode === "step") return steps;
    // curves put step = the update index; +1 so the end of epoch e reads e+1 and the last point reads 1.0
    const d = xMode === "epoch" ? stepsPerEpoch(job) : totalSteps(job);
    return d ? steps.map((s) => (s + 1) / d) : steps;
  }

  function draw() {
    if (chart) chart.destroy();
    chart = new Chart(chartBox, {
      title: `${metric} by ${XS[xMode]}`,
      xLabel: XS[xMode],
      height: 340,
      series: jobs.map((j, i) => ({ label: j.name || j.id, color: PALETTE[i % PALETTE.length], points: metric.startsWith("val_") })),
    });
    chart.set(jobs.map((j) => {
      const c = curves[j.id] || { step: [], value: [] };
      return { x: xOf(j, c.step), y: c.value };
    }));
  }

  function renderTable() {
    const cols = ["train_loss", "val_loss", "val_acc", "val_ece"];
    table.replaceChildren(h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Job"), h("th", {}, "Status"), ...cols.map((c) => h("th", { class: "num" }, `final ${c}`)),
        h("th", { class: "num" }, "best val_acc"), h("th", { class: "num" }, "best epoch"))),
      h("tbody", {}, jobs.map((j, i) => {
        const m = j.metrics || {};
        const b = j.best || {};
        return h("tr", {},
          h("td", {}, h("span", { style: `color:${PALETTE[i % PALETTE.length]}` }, "■ "), h("a", { href: `#/jobs/${encodeURIComponent(j.id)}` }, j.name || j.id)),
          h("td", {}, badge(j.status)),
          ...cols.map((c) => h("td", { class: "num" }, c === "val_acc" ? pct(m[c]) : num(m[c]))),
          h("td", { class: "num" }, pct(b.val_acc)),
          h("td", { class: "num" }, typeof b.epoch === "number" ? b.epoch + 1 : "–"));
      }))));
  }

  async function curveOf(job) {
    if (metric === "lr") {
      const body = await api(`/jobs/${encodeURIComponent(job.id)}/lr`, { signal: abort.signal });
      const a = body.actual && body.actual.step && body.actual.step.length ? body.actual : body.planned || {};
      return { step: a.step || [], value: a.lr || [] };
    }
    const body = await api(`/jobs/${encodeURIComponent(job.id)}/curves?metrics=${metric}&max_points=1500`, { signal: abort.signal });
    return (body.series && body.series[metric]) || { step: [], value: [] };
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const got = await Promise.all(ids.map((id) => api(`/jobs/${encodeURIComponent(id)}`, { signal: abort.signal }).catch((e) => ({ id, name: id, status: "?", missing: e }))));
      jobs = got;
      const cs = await Promise.all(jobs.map((j) => (j.missing ? { step: [], value: [] } : curveOf(j).catch(() => ({ step: [], value: [] })))));
      if (stopped) return;
      curves = Object.fromEntries(jobs.map((j, i) => [j.id, cs[i]]));
      const missing = jobs.filter((j) => j.missing);
      note.textContent = missing.length ? `Could not load: ${missing.map((j) => `${j.id} (${j.missing.message})`).join(", ")}` : "";
      draw();
      renderTable();
    } catch (e) {
      if (stopped || e.name === "AbortError") return;
      note.textContent = errorText(e);
    }
    if (!stopped && jobs.some((j) => !TERMINAL.has(j.status) && !j.missing)) timer = setTimeout(refresh, POLL_MS);
  }

  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
    abort.abort();
    if (chart) chart.destroy();
  };

  // Without ids: a quick picker over recent jobs.
  function picker() {
    const box = h("div", { class: "panel" }, h("p", { class: "muted" }, "Pick jobs to compare (or tick them in the Jobs list)."));
    const chosen = new Set();
    const go = h("button", { type: "button", class: "primary", disabled: true, onclick: () => { location.hash = `#/compare?ids=${[...chosen].map(encodeURIComponent).join(",")}`; } }, "Compare");
    api("/jobs?limit=50", { signal: abort.signal }).then((body) => {
      for (const j of listOf(body)) {
        const cb = h("input", { type: "checkbox" });
        cb.addEventListener("change", () => { cb.checked ? chosen.add(j.id) : chosen.delete(j.id); go.disabled = !chosen.size; });
        box.append(h("div", { class: "row" }, h("label", { class: "row" }, cb, j.name || j.id, badge(j.status))));
      }
      box.append(h("div", { class: "row", style: "margin-top:10px" }, go));
    }).catch((e) => box.append(h("div", { class: "formerror" }, errorText(e))));
    return box;
  }
}
