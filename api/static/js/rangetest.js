// An lr range test job (task "lr_range_test"): loss vs lr on a log10 x axis, the
// smoothed loss over the raw one, the suggested lr marked with the rule that
// picked it, and "Use this lr", which opens the designer (nothing is submitted) with
// the test's base spec as a training job, optimizer.lr set to the suggestion rounded to
// 2 significant digits, and the designer's defaults for epochs and schedule.
//
// While the test runs the curve comes from the live log points (series lr,
// train_loss, smoothed_loss, paired by step); once it is done, from the full
// per-step curve the worker stores at the end (range_lr, range_loss,
// range_smoothed; a full read, as INTERNALS.md says for these backfilled series).

import { api, cancelJob } from "./api.js";
import { Chart } from "./charts.js";
import { h, badge, progressBar, num, duration, age, errorText, toast } from "./util.js";
import { TERMINAL } from "./vocab.js";

const POLL_MS = 1500;
const MARK = "#16a34a";

/** An lr to 2 significant digits (0.432876 → 0.43): the test's resolution, not more. */
export function roundLr(lr) {
  return Number(lr.toPrecision(2));
}

/** Pair series by step: x from `xs`, one y per series in `ys` (points lacking an x are dropped). */
function byStep(xs, ...ys) {
  const at = new Map((xs.step || []).map((s, i) => [s, xs.value[i]]));
  return ys.map((s) => {
    const out = { x: [], y: [] };
    (s.step || []).forEach((st, i) => {
      const x = at.get(st);
      if (typeof x === "number" && x > 0) {
        out.x.push(x);
        out.y.push(s.value[i]);
      }
    });
    return out;
  });
}

export function mountRangeTest(root, { id }) {
  const base = `/jobs/${encodeURIComponent(id)}`;
  const abort = new AbortController();
  let stopped = false;
  let timer = null;
  let job = null;
  let suggested = null;
  let finalDrawn = false;

  const head = h("div", { class: "spread" });
  const note = h("div", { class: "formerror" });
  const errorBox = h("div", { class: "errorbox", hidden: true });
  const stats = h("div", { class: "panel", id: "job-progress" });
  const suggest = h("div", { class: "panel suggest", id: "range-suggestion" }, h("span", { class: "muted" }, "The suggestion comes when the test ends."));
  const box = h("div", { id: "chart-range" });
  const specPre = h("pre", { class: "spec", id: "job-spec" });
  root.append(head, note, errorBox, stats, suggest,
    h("div", { class: "panel" }, box, h("div", { class: "muted small" }, "x: learning rate (log scale). The dashed line marks the suggested lr.")),
    h("div", { class: "panel" }, h("h3", {}, "Spec"), specPre));

  const marker = {
    hooks: {
      draw: [(u) => {
        if (!(suggested > 0)) return;
        const min = u.scales.x.min;
        const max = u.scales.x.max;
        if (!(suggested >= min && suggested <= max)) return;
        const dpr = window.devicePixelRatio || 1;
        const x = Math.round(u.valToPos(suggested, "x", true));
        const ctx = u.ctx;
        ctx.save();
        ctx.strokeStyle = MARK;
        ctx.fillStyle = MARK;
        ctx.lineWidth = 2 * dpr;
        ctx.setLineDash([6 * dpr, 4 * dpr]);
        ctx.beginPath();
        ctx.moveTo(x, u.bbox.top);
        ctx.lineTo(x, u.bbox.top + u.bbox.height);
        ctx.stroke();
        ctx.font = `${12 * dpr}px system-ui, sans-serif`;
        ctx.fillText(`suggested lr ${num(suggested)}`, x + 6 * dpr, u.bbox.top + 14 * dpr);
        ctx.restore();
      }],
    },
  };
  // Rebuilt when its points change: a uPlot log x scale that once saw an empty
  // setData kept a null range here (no axis, no lines) whatever came after.
  let chart = null;
  let drawnPoints = -1;
  const makeChart = () => new Chart(box, {
    title: "Loss vs learning rate",
    xLabel: "learning rate",
    xLog: true,
    height: 360,
    plugins: [marker],
    series: [
      { label: "loss (raw)", color: "#9ca3af", width: 1 },
      { label: "smoothed loss", color: "#2563eb", width: 2 },
    ],
  });

  function stat(label, value, attrs = {}) {
    return h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "value", ...attrs }, value));
  }

  function render() {
    const p = job.progress || {};
    const res = job.result || {};
    const rng = res.lr_range || {};
    const lr = (job.spec && job.spec.lr_range) || {};
    head.replaceChildren(
      h("div", {},
        h("div", { class: "row" }, h("h1", { id: "job-name" }, job.name || job.id), badge(job.status), h("span", { class: "muted" }, "LR range test")),
        h("div", { class: "muted small mono" }, job.id, " · created ", age(job.created_at),
          job.sweep_id ? [" · part of sweep ", h("a", { href: `#/sweeps/${encodeURIComponent(job.sweep_id)}` }, job.sweep_id)] : "")),
      h("div", { class: "row" },
        !TERMINAL.has(job.status) ? h("button", { type: "button", class: "danger", id: "cancel-job", onclick: cancel }, "Cancel") : "",
        h("button", { type: "button", onclick: () => openDesigner(null), title: "Open the designer with this spec" }, "Clone")),
    );
    stats.replaceChildren(
      progressBar(job, true),
      h("div", { class: "stats" },
        stat("Step", p.total_steps ? `${p.step ?? 0} / ${p.total_steps}` : "–"),
        stat("ETA", job.status === "running" ? duration(p.eta_seconds) : "–"),
        stat("lr from", num(lr.min_lr)),
        stat("lr to", num(lr.max_lr)),
        stat("Stopped early", rng.stopped_early === undefined ? "–" : rng.stopped_early ? `yes, at lr ${num(rng.diverged_at_lr)}` : "no"),
      ),
    );
    errorBox.hidden = !job.error;
    if (job.error) errorBox.replaceChildren(h("strong", {}, "Error"), h("pre", {}, job.error.message || JSON.stringify(job.error)));
    suggested = typeof res.suggested_lr === "number" ? res.suggested_lr : null;
    if (suggested !== null) {
      suggest.replaceChildren(
        h("div", {}, h("div", { class: "muted small" }, "Suggested lr"), h("div", { class: "value mono", id: "suggested-lr", title: `${suggested}` }, num(suggested))),
        h("div", { style: "flex:1" }, h("div", { class: "muted small" }, "Rule"), h("div", { id: "suggested-rule" }, res.rule || "–")),
        h("button", { type: "button", class: "primary", id: "use-lr", onclick: () => openDesigner(suggested), title: `Open the designer with this test's model, data and optimizer at lr ${roundLr(suggested)}` }, `Use this lr (${roundLr(suggested)})`),
      );
    }
    const text = JSON.stringify(job.spec ?? {}, null, 2);
    if (specPre.textContent !== text) specPre.textContent = text;
  }

  async function drawCurve() {
    const done = TERMINAL.has(job.status);
    let pair;
    if (done) {
      const body = await api(`${base}/curves?metrics=range_lr,range_loss,range_smoothed`, { signal: abort.signal });
      const s = body.series || {};
      pair = byStep(s.range_lr || {}, s.range_loss || {}, s.range_smoothed || {});
      if (!pair[0].x.length && job.result && job.result.lr_range) {
        const r = job.result.lr_range; // an older worker: the curve from the result
        pair = [{ x: r.lrs || [], y: r.losses || [] }, { x: r.lrs || [], y: r.smoothed || [] }];
      }
      finalDrawn = pair[0].x.length > 0 || job.status !== "succeeded";
    } else {
      const body = await api(`${base}/curves?metrics=lr,train_loss,smoothed_loss`, { signal: abort.signal });
      const s = body.series || {};
      pair = byStep(s.lr || {}, s.train_loss || {}, s.smoothed_loss || {});
    }
    if (stopped) return;
    const n = pair[0].x.length + pair[1].x.length;
    if (n !== drawnPoints || !chart) {
      if (chart) chart.destroy();
      chart = makeChart();
      chart.set(pair);
      drawnPoints = n;
      // y up to 1.5 × the smoothed loss's start: a diverged tail (100s) would flatten the rest
      const sm = pair[1].y.filter((v) => typeof v === "number" && Number.isFinite(v));
      if (sm.length > 1) {
        const all = pair[0].y.concat(sm).filter((v) => typeof v === "number" && Number.isFinite(v));
        chart.plot.setScale("y", { min: Math.min(0, ...all), max: 1.5 * Math.max(...sm.slice(0, Math.max(1, sm.indexOf(Math.min(...sm))))) });
      }
    } else {
      chart.plot.redraw(); // the suggestion may have arrived: redraw the marker
    }
  }

  async function tick() {
    clearTimeout(timer);
    try {
      job = await api(base, { signal: abort.signal });
      if (stopped) return;
      render();
      await drawCurve();
      note.textContent = "";
      if (TERMINAL.has(job.status) && finalDrawn) return;
    } catch (e) {
      if (stopped || e.name === "AbortError") return;
      note.textContent = e.status === 404 ? `No job ${id}.` : `Could not load the job: ${errorText(e)}`;
      if (e.status === 404) return;
    }
    timer = setTimeout(tick, POLL_MS);
  }

  async function cancel() {
    await cancelJob(base);
    tick();
  }

  /**
   * The designer with this test's base spec as a training job. Clone (lr null) keeps
   * the whole spec; "Use this lr" keeps what the test measured the lr for (data, model,
   * optimizer, regularization, batch size) with optimizer.lr = the suggestion to 2
   * significant digits, and leaves epochs and the schedule to the designer's defaults
   * (the test's own training.epochs is no training plan). Nothing is submitted.
   */
  function openDesigner(lr) {
    const spec = JSON.parse(JSON.stringify(job.spec || {}));
    spec.task = "train";
    delete spec.lr_range;
    if (lr !== null) {
      spec.optimizer = { ...(spec.optimizer || {}), lr: roundLr(lr) };
      delete spec.schedule;
      if (spec.training) {
        delete spec.training.epochs;
        delete spec.training.stop_after_epochs;
      }
      const base = (spec.name || "").replace(/^LR range:\s*/, "").trim() || spec.data?.dataset || "job";
      spec.name = `${base} @ lr ${roundLr(lr)}`.slice(0, 200);
    }
    sessionStorage.setItem("tricklab.cloneSpec", JSON.stringify(spec));
    // the range settings, so the designer's range-test launcher starts from them
    if (job.spec && job.spec.lr_range) sessionStorage.setItem("tricklab.rangeSpec", JSON.stringify(job.spec.lr_range));
    location.hash = lr !== null ? "#/new?clone=1&from=range" : "#/new?clone=1";
  }

  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
    abort.abort();
    if (chart) chart.destroy();
  };
}
