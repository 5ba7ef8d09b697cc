// One job: status, progress and ETA, its timeline (duration, attempts), lineage
// (fork parent and forks, the parent's curves before the fork drawn in), live curves
// (incremental ?since= polling, nudged by the job's SSE stream), planned vs actual
// lr, the worker's system figures, the job's own log, spec, cancel, download, tags
// and notes (PATCH /jobs/{id}).
//
// Epochs, as docs/conventions.md has them: an epoch index in the API counts from 0
// (best.epoch 8 is the 9th epoch); this page shows them 1-based ("epoch 9/20"), with
// the API's value in the tooltip.

import { api, cancelJob, download, streamEvents } from "./api.js";
import { Chart } from "./charts.js";
import { logPanel } from "./joblog.js";
import { SYS_METRICS, systemPanel } from "./jobsystem.js";
import { timelinePanel } from "./jobtimeline.js";
import { lineagePanel, parentCurves } from "./lineage.js";
import { h, badge, progressBar, num, pct, duration, age, errorText, toast, stepsPerEpoch } from "./util.js";
import { TERMINAL } from "./vocab.js";

const POLL_MS = 2000;
const CURVE_METRICS = ["train_loss", "val_loss", "train_acc", "val_acc", "val_ece"];
const PARENT = { color: "rgba(107, 114, 128, 0.55)", dash: [5, 5], width: 1.5 };

/**
 * [text, tooltip] of the epoch stat, as docs/conventions.md says: "epoch 9/20" while
 * index 8 of 20 trains, "—/20" before the first update, "20/20 done" at the end (a count).
 */
export function epochText(job) {
  const p = job.progress || {};
  const total = p.epochs || (job.plan && job.plan.epochs) || 0;
  if (!total) return ["–", null];
  if (!job.started_at || (!p.step && !TERMINAL.has(job.status))) return [`—/${total}`, "not started"];
  const spe = stepsPerEpoch(job);
  const done = spe ? Math.min(total, Math.floor((p.step || 0) / spe)) : null;
  if (job.status === "running") {
    const index = p.epoch || 0;
    return [`epoch ${Math.min(index + 1, total)}/${total}`, `progress.epoch = ${index} in the API (0-based): the epoch in progress`];
  }
  return [`${done ?? "?"}/${total} done`, job.status === "queued" ? "epochs completed; re-queued, it resumes from its last checkpoint" : "epochs completed"];
}

export function mountJob(root, { id }) {
  const base = `/jobs/${encodeURIComponent(id)}`;
  const abort = new AbortController();
  let stopped = false;
  let timer = null;
  let job = null;
  let since = null;
  const series = Object.fromEntries([...CURVE_METRICS, ...SYS_METRICS].map((m) => [m, { x: [], y: [] }]));
  let lr = { planned: { x: [], y: [] }, actual: { x: [], y: [] } };
  let parent = null; // the fork parent's curves before the fork point, once read
  let attemptsKey = null; // "attempts:status" when the timeline was last read
  let history = null;

  const head = h("div", { class: "spread" });
  const errorBox = h("div", { class: "errorbox", id: "job-error", hidden: true });
  const stats = h("div", { class: "panel", id: "job-progress" });
  const note = h("div", { class: "formerror" });
  const boxes = {
    loss: h("div", { id: "chart-loss" }),
    acc: h("div", { id: "chart-acc" }),
    ece: h("div", { id: "chart-ece" }),
    lr: h("div", { id: "chart-lr" }),
  };
  const specPre = h("pre", { class: "spec", id: "job-spec" });
  const notes = annotations();
  const timeline = timelinePanel();
  const lineage = lineagePanel(abort.signal);
  const system = systemPanel();
  const logs = logPanel(base, abort.signal);
  root.append(
    head, note, errorBox, stats,
    timeline.el,
    lineage.el,
    notes.panel,
    h("div", { class: "charts" }, ...Object.values(boxes).map((b) => h("div", { class: "panel" }, b))),
    system.el,
    logs.el,
    h("div", { class: "panel" }, h("h3", {}, "Spec"), specPre),
  );
  let charts = null; // made with the first record: a fork's charts get the parent's series

  /** The curve charts; `fork`: add a faint dashed "parent …" series to each. */
  function makeCharts(fork) {
    const p = (label) => (fork ? [{ label: `parent ${label}`, ...PARENT, points: label.startsWith("val_") }] : []);
    return {
      // the record gives the epoch/fraction axes their schedule: no GET of its own
      loss: new Chart(boxes.loss, { title: "Loss", controls: { schedule: job }, series: [{ label: "train_loss" }, { label: "val_loss", points: true }, ...p("train_loss"), ...p("val_loss")] }),
      acc: new Chart(boxes.acc, { title: "Accuracy", series: [{ label: "train_acc" }, { label: "val_acc", points: true }, ...p("train_acc"), ...p("val_acc")] }),
      ece: new Chart(boxes.ece, { title: "Calibration error (ECE)", series: [{ label: "val_ece", points: true, color: "#d97706" }, ...p("val_ece")] }),
      lr: new Chart(boxes.lr, { title: "Learning rate", series: [{ label: "planned", color: "#9ca3af", dash: [6, 4], width: 2 }, { label: "actual", color: "#2563eb" }, ...p("lr")] }),
    };
  }

  /** Tags (chips with ×, a box to add one) and notes, saved with PATCH /jobs/{id}. */
  function annotations() {
    const chips = h("span", { class: "tags", id: "job-tags" });
    const input = h("input", { id: "tag-input", placeholder: "add a tag, Enter", size: 18, "aria-label": "Add a tag" });
    const text = h("textarea", { id: "job-notes", placeholder: "Notes", "aria-label": "Notes" });
    const saveBtn = h("button", { type: "button", id: "save-notes", disabled: true }, "Save notes");
    const err = h("div", { class: "formerror", id: "tags-error" });
    let shown = null; // the tags the chips show, as JSON
    let notesDirty = false;
    async function patch(body) {
      err.textContent = "";
      try {
        job = await api(base, { method: "PATCH", body, signal: abort.signal });
        shown = null;
        render();
        return true;
      } catch (e) {
        if (e.name !== "AbortError") err.textContent = errorText(e);
        return false;
      }
    }
    input.addEventListener("keydown", async (ev) => {
      if (ev.key !== "Enter") return;
      ev.preventDefault();
      const t = input.value.trim();
      if (!t || !job) return;
      const tags = job.tags || [];
      if (await patch({ tags: tags.includes(t) ? tags : [...tags, t] })) input.value = "";
    });
    text.addEventListener("input", () => { notesDirty = true; saveBtn.disabled = false; });
    saveBtn.addEventListener("click", async () => {
      if (await patch({ notes: text.value })) {
        notesDirty = false;
        saveBtn.disabled = true;
        toast("Notes saved");
      }
    });
    function render() {
      const tags = job.tags || [];
      if (JSON.stringify(tags) !== shown) {
        shown = JSON.stringify(tags);
        chips.replaceChildren(...tags.map((t) => h("span", { class: "tag", dataset: { tag: t } }, t,
          h("button", { type: "button", title: `remove ${t}`, "aria-label": `remove tag ${t}`,
            onclick: () => patch({ tags: (job.tags || []).filter((x) => x !== t) }) }, "×"))));
      }
      // polls do not overwrite what is being typed
      if (!notesDirty && document.activeElement !== text) text.value = job.notes || "";
    }
    const panel = h("div", { class: "panel", id: "job-annotations" },
      h("div", { class: "row" }, h("h3", { style: "margin:0" }, "Tags"), chips, input),
      h("div", { style: "margin-top:8px" }, text),
      h("div", { class: "row end" }, saveBtn),
      err);
    return { panel, render };
  }

  function renderHead() {
    const actions = [];
    if (!TERMINAL.has(job.status)) actions.push(h("button", { type: "button", class: "danger", id: "cancel-job", onclick: cancel }, "Cancel"));
    if (job.status === "succeeded") actions.push(h("button", { type: "button", id: "download-model", onclick: getModel }, "Download model"));
    actions.push(h("button", { type: "button", onclick: clone, title: "Open the designer with this spec" }, "Clone"));
    head.replaceChildren(
      h("div", {},
        h("div", { class: "row" }, h("h1", { id: "job-name" }, job.name || job.id), badge(job.status)),
        h("div", { class: "muted small mono" }, job.id, " · created ", age(job.created_at),
          job.sweep_id ? [" · part of sweep ", h("a", { href: `#/sweeps/${encodeURIComponent(job.sweep_id)}`, id: "job-sweep" }, job.sweep_id)] : ""),
        // why a queued job is not starting (no live worker serves its queue)
        job.pending_reason ? h("div", { class: "small pending-reason", id: "pending-reason" }, `Waiting: ${job.pending_reason}`) : ""),
      h("div", { class: "row" }, ...actions),
    );
  }

  function stat(label, value, attrs = {}) {
    return h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "value", ...attrs }, value));
  }

  function renderStats() {
    const p = job.progress || {};
    const m = job.metrics || {};
    const b = job.best || {};
    stats.replaceChildren(
      progressBar(job, true),
      h("div", { class: "stats" },
        stat("Epoch", epochText(job)[0], { id: "stat-epoch", title: epochText(job)[1] }),
        stat("Step", p.total_steps ? `${p.step ?? 0} / ${p.total_steps}` : "–"),
        stat("ETA", job.status === "running" ? duration(p.eta_seconds) : "–"),
        stat("Samples/s", typeof p.samples_per_second === "number" ? Math.round(p.samples_per_second).toLocaleString() : "–"),
        stat("Train loss", num(m.train_loss)),
        stat("Val loss", num(m.val_loss)),
        stat("Val acc", pct(m.val_acc)),
        typeof b.val_acc === "number"
          ? stat("Best val acc", `${pct(b.val_acc)} (epoch ${b.epoch + 1})`, { id: "best-epoch", title: `best.epoch = ${b.epoch} in the API (0-based)` })
          : stat("Best val acc", "–"),
        stat("lr", num(m.lr)),
      ),
    );
    const err = job.error;
    errorBox.hidden = !err;
    if (err) {
      errorBox.replaceChildren(
        h("strong", {}, job.status === "failed" ? "This job failed" : "Error"),
        err.type ? h("span", { class: "mono" }, ` — ${err.type}`) : "",
        h("pre", {}, err.message || JSON.stringify(err, null, 2)),
      );
    }
  }

  function render() {
    renderHead();
    renderStats();
    timeline.update(job, history);
    lineage.render(job);
    notes.render();
    const text = JSON.stringify(job.spec ?? {}, null, 2);
    if (specPre.textContent !== text) specPre.textContent = text;
  }

  function drawCurves() {
    const s = series;
    const claimed = job.started_at ? Date.parse(job.started_at) / 1000 : null;
    charts.loss.setClock(s.sys_time, Number.isFinite(claimed) ? claimed : null); // x = wall time
    const fork = !!(job.lineage && job.lineage.parent);
    const empty = { x: [], y: [] };
    const ps = (name) => (fork ? [(parent && parent[name]) || empty] : []);
    charts.loss.set([s.train_loss, s.val_loss, ...ps("train_loss"), ...ps("val_loss")].map((v) => ({ x: v.x, y: v.y })));
    charts.acc.set([s.train_acc, s.val_acc, ...ps("train_acc"), ...ps("val_acc")]);
    charts.ece.set([s.val_ece, ...ps("val_ece")]);
    charts.lr.set([lr.planned, lr.actual, ...ps("lr")]);
    if (fork && parent) {
      // what the tests (and a curious reader) can check: how much of the parent is drawn
      const drawn = ["train_loss", "val_loss"].flatMap((n) => (parent[n] || empty).x);
      boxes.loss.dataset.parentPoints = String(drawn.length);
      boxes.loss.dataset.parentLastStep = drawn.length ? String(Math.max(...drawn)) : "";
    }
    system.draw(s);
  }

  /** Add the points of `incoming` whose steps `target` lacks, keeping steps sorted. */
  function merge(target, incoming) {
    if (!incoming) return false;
    target.seen ??= new Set(target.x);
    const xs = incoming.step || [];
    const ys = incoming.value || [];
    let added = false;
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i];
      if (target.seen.has(x)) continue;
      target.seen.add(x);
      added = true;
      const n = target.x.length;
      if (!n || x > target.x[n - 1]) {
        target.x.push(x);
        target.y.push(ys[i]);
      } else {
        const at = target.x.findIndex((v) => v > x);
        target.x.splice(at, 0, x);
        target.y.splice(at, 0, ys[i]);
      }
    }
    return added;
  }

  async function fetchCurves() {
    const names = [...CURVE_METRICS, ...SYS_METRICS];
    const q = new URLSearchParams({ metrics: names.join(","), max_points: "2000" });
    if (since !== null) q.set("since", String(since));
    const body = await api(`${base}/curves?${q}`, { signal: abort.signal });
    let changed = false;
    for (const m of names) changed = merge(series[m], body.series && body.series[m]) || changed;
    // Exact: the worker writes all points of a step in one transaction, in step
    // order (INTERNALS.md, "Series write rule"); merge still drops repeats.
    if (typeof body.next_since === "number") since = body.next_since;
    return changed;
  }

  /** The parent's curves before the fork: they do not change, so one read (retried until it works). */
  async function fetchParent() {
    const lin = job.lineage || {};
    if (!lin.parent || parent) return;
    parent = await parentCurves(lin.parent, lin.from_step ?? 0, CURVE_METRICS, abort.signal);
  }

  /** The attempts, re-read when their count or the status changes, or while the last is starting. */
  async function fetchAttempts() {
    const key = `${job.attempts}:${job.status}`;
    const last = history && history[history.length - 1];
    const starting = last && !last.ended && !last.device;
    if (key === attemptsKey && !starting) return;
    const full = await api(`${base}?include=attempts`, { signal: abort.signal });
    attemptsKey = `${full.attempts}:${full.status}`;
    history = full.attempt_history || [];
    timeline.update(job, history);
  }

  async function fetchLr() {
    const body = await api(`${base}/lr`, { signal: abort.signal });
    const pick = (s) => ({ x: (s && s.step) || [], y: (s && s.lr) || [] });
    lr = { planned: pick(body.planned), actual: pick(body.actual) };
  }

  let lrTick = 0;
  let finalPasses = 0;
  async function tick() {
    clearTimeout(timer);
    try {
      job = await api(base, { signal: abort.signal });
      if (stopped) return;
      if (!charts) charts = makeCharts(!!(job.lineage && job.lineage.parent));
      render();
      const done = TERMINAL.has(job.status);
      // the lr endpoint returns the whole curve; refresh it less often than the job
      const wantLr = lrTick++ % 3 === 0 || done || lr.planned.x.length === 0;
      await Promise.all([
        fetchCurves(),
        wantLr ? fetchLr().catch(() => {}) : null,
        fetchParent().catch(() => {}),
        fetchAttempts().catch(() => {}),
        logs.poll(),
      ]);
      if (stopped) return;
      drawCurves();
      note.textContent = "";
      // after the end, one more pass picks up points written just before it; then stop
      if (done && finalPasses++ >= 1) return;
    } catch (e) {
      if (stopped || e.name === "AbortError") return;
      note.textContent = e.status === 404 ? `No job ${id}.` : `Could not load the job: ${errorText(e)}`;
      if (e.status === 404) return;
    }
    timer = setTimeout(tick, POLL_MS);
  }

  // SSE nudges: a status change or a new metric point triggers an early poll;
  // progress events update the numbers directly. Polling stays as the fallback.
  let nudge = null;
  function soon() {
    if (nudge || stopped) return;
    nudge = setTimeout(() => {
      nudge = null;
      if (job && !TERMINAL.has(job.status)) tick();
    }, 300);
  }
  function onEvent(type, data) {
    if (!job || stopped) return;
    if (type === "progress" && data && typeof data === "object") {
      job.progress = { ...(job.progress || {}), ...(data.progress || data) };
      renderStats();
    } else if (type === "status" || type === "metrics" || type === "epoch") {
      soon();
    }
  }
  streamEvents(`${base}/events`, onEvent, abort.signal).catch(() => {});

  async function cancel() {
    await cancelJob(base);
    tick();
  }

  async function getModel() {
    try {
      await download(`${base}/model`, `${(job.name || job.id).replace(/[^\w.-]+/g, "_")}.safetensors`);
    } catch (e) {
      toast(`Download failed: ${e.message}`, 5000);
    }
  }

  function clone() {
    sessionStorage.setItem("tricklab.cloneSpec", JSON.stringify(job.spec || {}));
    location.hash = "#/new?clone=1";
  }

  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
    clearTimeout(nudge);
    abort.abort();
    timeline.destroy();
    system.destroy();
    if (charts) Object.values(charts).forEach((c) => c.destroy());
  };
}
