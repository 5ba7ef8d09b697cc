// One job: status, progress and ETA, live curves (incremental ?since= polling,
// nudged by the job's SSE stream), planned vs actual lr, spec, cancel, download,
// tags and notes (PATCH /jobs/{id}).

import { api, cancelJob, download, streamEvents } from "./api.js";
import { Chart } from "./charts.js";
import { h, badge, progressBar, num, pct, duration, age, epochLabel, errorText, toast } from "./util.js";
import { TERMINAL } from "./vocab.js";

const POLL_MS = 2000;
const CURVE_METRICS = ["train_loss", "val_loss", "train_acc", "val_acc", "val_ece"];

export function mountJob(root, { id }) {
  const base = `/jobs/${encodeURIComponent(id)}`;
  const abort = new AbortController();
  let stopped = false;
  let timer = null;
  let job = null;
  let since = null;
  const series = Object.fromEntries(CURVE_METRICS.map((m) => [m, { x: [], y: [] }]));
  let lr = { planned: { x: [], y: [] }, actual: { x: [], y: [] } };

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
  root.append(
    head, note, errorBox, stats,
    notes.panel,
    h("div", { class: "charts" }, ...Object.values(boxes).map((b) => h("div", { class: "panel" }, b))),
    h("div", { class: "panel" }, h("h3", {}, "Spec"), specPre),
  );
  const charts = {
    loss: new Chart(boxes.loss, { title: "Loss", series: [{ label: "train_loss" }, { label: "val_loss", points: true }] }),
    acc: new Chart(boxes.acc, { title: "Accuracy", series: [{ label: "train_acc" }, { label: "val_acc", points: true }] }),
    ece: new Chart(boxes.ece, { title: "Calibration error (ECE)", series: [{ label: "val_ece", points: true, color: "#d97706" }] }),
    lr: new Chart(boxes.lr, { title: "Learning rate", series: [{ label: "planned", color: "#9ca3af", dash: [6, 4], width: 2 }, { label: "actual", color: "#2563eb" }] }),
  };

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

  function stat(label, value) {
    return h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
  }

  function renderStats() {
    const p = job.progress || {};
    const m = job.metrics || {};
    const b = job.best || {};
    stats.replaceChildren(
      progressBar(job, true),
      h("div", { class: "stats" },
        stat("Epochs done", epochLabel(job)),
        stat("Step", p.total_steps ? `${p.step ?? 0} / ${p.total_steps}` : "–"),
        stat("ETA", job.status === "running" ? duration(p.eta_seconds) : "–"),
        stat("Samples/s", typeof p.samples_per_second === "number" ? Math.round(p.samples_per_second).toLocaleString() : "–"),
        stat("Train loss", num(m.train_loss)),
        stat("Val loss", num(m.val_loss)),
        stat("Val acc", pct(m.val_acc)),
        stat("Best val acc", typeof b.val_acc === "number" ? `${pct(b.val_acc)} (epoch ${b.epoch + 1})` : "–"),
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
    notes.render();
    const text = JSON.stringify(job.spec ?? {}, null, 2);
    if (specPre.textContent !== text) specPre.textContent = text;
  }

  function drawCurves() {
    const s = series;
    charts.loss.set([s.train_loss, s.val_loss].map((v) => ({ x: v.x, y: v.y })));
    charts.acc.set([s.train_acc, s.val_acc]);
    charts.ece.set([s.val_ece]);
    charts.lr.set([lr.planned, lr.actual]);
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
    const q = new URLSearchParams({ metrics: CURVE_METRICS.join(","), max_points: "2000" });
    if (since !== null) q.set("since", String(since));
    const body = await api(`${base}/curves?${q}`, { signal: abort.signal });
    let changed = false;
    for (const m of CURVE_METRICS) changed = merge(series[m], body.series && body.series[m]) || changed;
    // Exact: the worker writes all points of a step in one transaction, in step
    // order (INTERNALS.md, "Series write rule"); merge still drops repeats.
    if (typeof body.next_since === "number") since = body.next_since;
    return changed;
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
      render();
      const done = TERMINAL.has(job.status);
      // the lr endpoint returns the whole curve; refresh it less often than the job
      const wantLr = lrTick++ % 3 === 0 || done || lr.planned.x.length === 0;
      await Promise.all([fetchCurves(), wantLr ? fetchLr().catch(() => {}) : null]);
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
    Object.values(charts).forEach((c) => c.destroy());
  };
}
