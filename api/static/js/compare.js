// Compare (#/compare?ids=a,b,c&metric=val_acc&x=epoch): overlay one metric of
// several jobs, x by step, epoch (whole-epoch ticks) or fraction of the schedule,
// a table of final and best metrics, and the config diff: only the spec paths
// whose values differ between the jobs, one row per path, one column per job.

import { api, listOf } from "./api.js";
import { Chart, PALETTE, setHashParams } from "./charts.js";
import { diffPaths } from "./chartmath.js";
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
  const diffBox = h("div", { id: "compare-diff-box", class: "scroll" });
  root.append(
    h("div", { class: "spread" },
      h("h1", {}, `Compare ${ids.length} job${ids.length === 1 ? "" : "s"}`),
      h("div", { class: "row" }, h("label", {}, "Metric ", metricSel), h("label", {}, "x ", xSel))),
    note,
    h("div", { class: "panel" }, chartBox),
    h("div", { class: "panel", style: "padding:0" }, table),
    h("div", { class: "panel" }, h("h3", {}, "Config diff"), diffBox),
  );

  function keepUrl() {
    // setHashParams keeps the chart controls' smooth and logy
    setHashParams({ metric, x: xMode });
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
      xTicks: xMode === "epoch" ? "whole" : undefined,
      controls: { x: false, key: "compare" },
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
          h("td", {}, h("span", { style: `color:${PALETTE[i % PALETTE.length]}` }, "■ "), jobLink(j)),
          h("td", {}, badge(j.status)),
          ...cols.map((c) => h("td", { class: "num" }, c === "val_acc" ? pct(m[c]) : num(m[c]))),
          h("td", { class: "num" }, pct(b.val_acc)),
          h("td", { class: "num" }, typeof b.epoch === "number" ? b.epoch + 1 : "–"));
      }))));
  }

  /** The spec paths that differ (the name aside: it heads the column), one column per job. */
  function renderDiff() {
    const shown = jobs.filter((j) => !j.missing);
    if (shown.length < 2) {
      diffBox.replaceChildren(h("p", { class: "muted small" }, "Pick two jobs or more to see what differs."));
      return;
    }
    const rows = diffPaths(shown.map((j) => j.spec || {})).filter((r) => r.path !== "name");
    diffBox.replaceChildren(
      rows.length
        ? h("table", { id: "compare-diff" },
          h("thead", {}, h("tr", {}, h("th", {}, "Spec path"),
            ...shown.map((j) => h("th", {}, h("span", { style: `color:${PALETTE[jobs.indexOf(j) % PALETTE.length]}` }, "■ "), jobLink(j))))),
          h("tbody", {}, rows.map((r) => h("tr", { dataset: { path: r.path } },
            h("td", { class: "path" }, r.path),
            ...r.values.map((v) => (v === null ? h("td", { class: "val missing", title: "not in this job's spec" }, "–") : h("td", { class: "val" }, v)))))))
        : h("p", { class: "muted small", id: "compare-diff-same" }, "The specs are the same (name aside)."),
    );
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
      renderDiff();
    } catch (e) {
      if (stopped || e.name === "AbortError") return;
      note.textContent = errorText(e);
    }
    if (!stopped && jobs.some((j) => !TERMINAL.has(j.status) && !j.missing)) timer = setTimeout(refresh, POLL_MS);
  }

  /** The job's name in full: ellipsis past the column width, the whole name in the tooltip. */
  function jobLink(j) {
    const name = j.name || j.id;
    return h("a", { href: `#/jobs/${encodeURIComponent(j.id)}`, class: "job-name", title: name === j.id ? j.id : `${name} (${j.id})` }, name);
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
