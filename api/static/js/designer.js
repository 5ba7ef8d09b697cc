// Schedule designer (#/new): a form over the job spec, a live lr preview
// (debounced POST /schedules/preview) and Submit → POST /jobs. Errors from
// either call are shown beside the field their `loc` names.

import { api, listOf } from "./api.js";
import { Chart } from "./charts.js";
import { FIELDS, SECTIONS, SWITCHES, OPT_DEFAULTS } from "./fields.js";
import { h, debounce, num, errorText } from "./util.js";

const PREVIEW_MS = 250;

function setPath(obj, path, value) {
  const parts = path.split(".");
  let o = obj;
  for (const p of parts.slice(0, -1)) o = o[p] && typeof o[p] === "object" ? o[p] : (o[p] = {});
  o[parts[parts.length - 1]] = value;
}

function getPath(obj, path) {
  let o = obj;
  for (const p of path.split(".")) {
    if (o === null || o === undefined || typeof o !== "object" || !(p in o)) return undefined;
    o = o[p];
  }
  return o;
}

function listText(v) {
  return Array.isArray(v) ? v.join(", ") : v ?? "";
}

/** steps per epoch as tricks.spec.steps_per_epoch computes it, from the dataset's size. */
function stepsPerEpoch(meta, valFraction, batch) {
  if (!meta || !(batch >= 1)) return null;
  let nTrain = meta.n_train;
  if (!meta.n_val) nTrain = meta.n_train - Math.max(1, Math.round(meta.n_train * valFraction));
  return Math.max(1, Math.floor(nTrain / batch));
}

export function mountDesigner(root, params) {
  const abort = new AbortController();
  let stopped = false;
  let datasets = [];
  const inputs = new Map(); // key → input element
  const wrappers = new Map(); // key → .field element

  // ------------------------------------------------------------------ the form
  function makeInput(f) {
    const id = `f-${f.key.replace(/[^\w]/g, "-")}`;
    let el;
    if (f.type === "select") {
      el = h("select", { id, name: f.key }, (f.options || []).map((o) => h("option", { value: o }, o)));
    } else if (f.type === "bool") {
      el = h("input", { id, name: f.key, type: "checkbox" });
    } else if (f.type === "number" || f.type === "int") {
      el = h("input", { id, name: f.key, type: "number", step: f.step ?? (f.type === "int" ? 1 : "any"), min: f.min, max: f.max, inputmode: "decimal" });
    } else {
      el = h("input", { id, name: f.key, type: "text", maxlength: f.max, spellcheck: "false" });
    }
    writeInput(el, f, f.def);
    return el;
  }

  function writeInput(el, f, value) {
    if (f.type === "bool") el.checked = !!value;
    else if (f.type === "intlist" || f.type === "floatlist") el.value = listText(value);
    else el.value = value === null || value === undefined ? "" : String(value);
  }

  function readInput(f) {
    const el = inputs.get(f.key);
    if (f.type === "bool") return el.checked;
    const raw = el.value.trim();
    if (f.type === "number" || f.type === "int") {
      if (raw === "") return f.optional ? undefined : null; // null → the API names the field
      return Number(raw);
    }
    if (f.type === "intlist" || f.type === "floatlist") {
      if (raw === "") return [];
      return raw.split(/[\s,]+/).filter(Boolean).map(Number);
    }
    return raw;
  }

  const v = (key) => {
    const f = FIELDS.find((x) => x.key === key);
    return f ? readInput(f) : undefined;
  };
  const visible = (f) => !f.when || f.when(v);

  function syncVisibility() {
    for (const f of FIELDS) wrappers.get(f.key).hidden = !visible(f);
  }

  function buildSpec() {
    const spec = {};
    for (const f of FIELDS) {
      if (!f.path || !visible(f)) continue;
      const val = readInput(f);
      if (val === undefined) continue;
      setPath(spec, f.path, val);
    }
    for (const s of SWITCHES) if (!s.on(v(s.key))) setPath(spec, s.path, null);
    return spec;
  }

  function fill(spec) {
    // switches first, so `when` sees them; then every field whose condition holds
    for (const s of SWITCHES) {
      const f = FIELDS.find((x) => x.key === s.key);
      writeInput(inputs.get(s.key), f, s.fromSpec(getPath(spec, s.path)));
    }
    for (const f of FIELDS) {
      if (!f.path || !visible(f)) continue;
      const val = getPath(spec, f.path);
      if (val !== undefined && val !== null) writeInput(inputs.get(f.key), f, val);
    }
    syncVisibility();
  }

  const formError = h("div", { class: "formerror", id: "form-error", role: "alert" });
  const submitBtn = h("button", { type: "submit", class: "primary", id: "submit-job" }, "Submit job");
  const form = h("form", { id: "designer-form", novalidate: true, autocomplete: "off" });
  for (const section of SECTIONS) {
    const fs = h("fieldset", {}, h("legend", {}, section.title));
    for (const f of section.fields) {
      const input = makeInput(f);
      inputs.set(f.key, input);
      const wrap = h(
        "div",
        { class: "field", dataset: { key: f.key, path: f.path || f.errPath } },
        h("label", { for: input.id }, f.label),
        input,
        f.help ? h("div", { class: "help" }, f.help) : null,
        h("div", { class: "err" }),
      );
      wrappers.set(f.key, wrap);
      fs.append(wrap);
    }
    form.append(fs);
  }
  form.append(formError, h("div", { class: "row" }, submitBtn));

  // --------------------------------------------------------------- preview
  const previewBox = h("div", { id: "preview-chart" });
  const previewInfo = h("div", { class: "muted small", id: "preview-info" }, "…");
  const previewError = h("div", { class: "formerror", id: "preview-error" });
  // ------------------------------------------------------ lr range test launcher
  // Not part of the form's spec (lr_range is a 422 on a training job): the button
  // POSTs the current form as task lr_range_test with these settings.
  const RANGE = [
    { key: "lr_range.min_lr", label: "Min lr", def: 1e-6, min: 0, help: "Start of the exponential lr sweep." },
    { key: "lr_range.max_lr", label: "Max lr", def: 10, min: 0, help: "End; the test stops early once the loss diverges." },
    { key: "lr_range.steps", label: "Steps", def: 100, min: 10, step: 1, help: "Updates in the test (10 to 100000)." },
  ];
  const rangeInputs = new Map();
  const rangeError = h("div", { class: "formerror", id: "range-error", role: "alert" });
  const rangeBtn = h("button", { type: "button", id: "run-range-test", onclick: () => launchRange() }, "Run LR range test");
  const rangePanel = h("div", { class: "panel range-panel", id: "range-panel" },
    h("h3", {}, "LR range test"),
    h("p", { class: "muted small" }, "Train a throwaway copy of this form's model while the lr grows exponentially, then pick lr from the loss curve (Smith 2017; fastai lr_find)."));
  for (const f of RANGE) {
    const id = `f-${f.key.replace(/[^\w]/g, "-")}`;
    const input = h("input", { id, name: f.key, type: "number", step: f.step ?? "any", min: f.min, inputmode: "decimal", value: String(f.def) });
    rangeInputs.set(f.key, input);
    const wrap = h("div", { class: "field", dataset: { key: f.key, path: f.key } },
      h("label", { for: id }, f.label), input, h("div", { class: "help" }, f.help), h("div", { class: "err" }));
    wrappers.set(f.key, wrap); // so a 422's loc lands beside it
    rangePanel.append(wrap);
  }
  rangePanel.append(rangeError, h("div", { class: "row" }, rangeBtn));

  function rangeSpec() {
    const out = {};
    for (const [key, el] of rangeInputs) {
      const raw = el.value.trim();
      out[key.split(".")[1]] = raw === "" ? null : Number(raw);
    }
    return out;
  }

  async function launchRange() {
    clearErrors();
    rangeBtn.disabled = true;
    const spec = buildSpec();
    spec.task = "lr_range_test";
    spec.lr_range = rangeSpec();
    spec.name = `LR range: ${spec.name || spec.data.dataset}`.slice(0, 200);
    try {
      const job = await api("/jobs", { method: "POST", body: spec });
      location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    } catch (e) {
      rangeError.textContent = showErrors(e, "submit") || (e.status === 422 ? "Fix the fields marked in red." : "");
    } finally {
      rangeBtn.disabled = false;
    }
  }

  root.append(
    h("div", { class: "spread" }, h("h1", {}, "New job"), h("span", { class: "muted" }, "Design the schedule; the curve follows as you type.")),
    h("div", { class: "designer" },
      form,
      h("div", { class: "preview" },
        h("div", { class: "panel" }, h("h3", {}, "Planned learning rate"), previewBox, previewInfo, previewError),
        rangePanel)),
  );
  const chart = new Chart(previewBox, { title: "", series: [{ label: "lr", color: "#2563eb", width: 2 }], height: 300 });

  // -------------------------------------------------------------- errors
  function clearErrors(source) {
    for (const w of wrappers.values()) {
      if (source && w.dataset.errSource !== source) continue;
      w.classList.remove("invalid");
      w.querySelector(".err").textContent = "";
      delete w.dataset.errSource;
    }
    if (!source || source === "submit") formError.textContent = "";
    if (!source) rangeError.textContent = ""; // declared below; called only after mount
    if (!source || source === "preview") previewError.textContent = "";
  }

  /** The visible field a loc points at: the longest prefix of the path that names one. */
  function fieldFor(path) {
    for (let n = path.length; n > 0; n--) {
      const p = path.slice(0, n).join(".");
      for (const w of wrappers.values()) if (w.dataset.path === p && !w.hidden) return w;
    }
    return null;
  }

  function showErrors(err, source, mapLoc = (l) => l) {
    const loose = [];
    for (const d of err.details || []) {
      let loc = (d.loc || []).filter((p) => p !== "body");
      loc = mapLoc(loc);
      const w = fieldFor(loc.map(String));
      if (w) {
        w.classList.add("invalid");
        w.dataset.errSource = source;
        const e = w.querySelector(".err");
        e.textContent = e.textContent ? `${e.textContent}; ${d.msg}` : d.msg;
      } else {
        loose.push(`${loc.join(".") || "spec"}: ${d.msg}`);
      }
    }
    const text = (err.details || []).length ? loose.join("\n") : errorText(err);
    return text;
  }

  // the preview body is {lr, epochs, steps_per_epoch, schedule}; point its locs into the spec
  const previewLoc = (loc) => {
    const head = { lr: ["optimizer", "lr"], epochs: ["training", "epochs"], steps_per_epoch: ["training", "batch_size"] }[loc[0]];
    return head ? [...head, ...loc.slice(1)] : loc;
  };

  let previewSeq = 0;
  async function preview() {
    const seq = ++previewSeq;
    const spec = buildSpec();
    const meta = datasets.find((d) => d.id === spec.data.dataset);
    const spe = stepsPerEpoch(meta, spec.data.val_fraction, spec.training.batch_size);
    clearErrors("preview");
    if (!spe) {
      previewInfo.textContent = meta ? "Set a batch size to see the schedule." : "Pick a dataset to see the schedule.";
      return;
    }
    try {
      const body = await api("/schedules/preview", {
        method: "POST",
        body: { lr: spec.optimizer.lr, epochs: spec.training.epochs, steps_per_epoch: spe, schedule: spec.schedule, max_points: 2000 },
        signal: abort.signal,
      });
      if (seq !== previewSeq || stopped) return;
      chart.set([{ x: body.step, y: body.lr }]);
      const lrs = body.lr || [];
      const peak = lrs.length ? Math.max(...lrs) : null;
      previewInfo.textContent =
        `${body.total_steps} steps = ${spec.training.epochs} epochs × ${spe} batches ` +
        `(${meta.n_train} training samples / batch ${spec.training.batch_size}) · ` +
        `first ${num(lrs[0])} · peak ${num(peak)} · last ${num(lrs[lrs.length - 1])}`;
    } catch (e) {
      if (seq !== previewSeq || stopped || e.name === "AbortError") return;
      previewInfo.textContent = "No preview: fix the fields marked in red (the curve shown is the last valid one).";
      previewError.textContent = showErrors(e, "preview", previewLoc);
    }
  }
  const previewSoon = debounce(preview, PREVIEW_MS);

  // -------------------------------------------------------------- events
  form.addEventListener("input", (ev) => {
    clearErrors("submit");
    syncVisibility();
    previewSoon();
  });
  form.addEventListener("change", (ev) => {
    if (ev.target === inputs.get("optimizer.name")) {
      const d = OPT_DEFAULTS[ev.target.value];
      writeInput(inputs.get("optimizer.lr"), {}, d.lr);
      writeInput(inputs.get("optimizer.weight_decay"), {}, d.weight_decay);
    }
    syncVisibility();
    previewSoon();
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors();
    submitBtn.disabled = true;
    try {
      const job = await api("/jobs", { method: "POST", body: buildSpec() });
      location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    } catch (e) {
      formError.textContent = showErrors(e, "submit") || (e.status === 422 ? "Fix the fields marked in red." : "");
      const first = [...wrappers.values()].find((w) => w.classList.contains("invalid"));
      if (first) first.scrollIntoView({ block: "center", behavior: "smooth" });
    } finally {
      submitBtn.disabled = false;
    }
  });

  // -------------------------------------------------------------- start
  async function loadDatasets() {
    const sel = inputs.get("data.dataset");
    try {
      datasets = listOf(await api("/datasets", { signal: abort.signal }));
    } catch (e) {
      if (stopped) return;
      formError.textContent = `Could not load datasets: ${errorText(e)}`;
      return;
    }
    if (stopped) return;
    const current = sel.value;
    sel.replaceChildren(
      ...datasets.map((d) =>
        h("option", { value: d.id }, `${d.id} — ${d.kind} ${JSON.stringify(d.input_shape)}, ${d.num_classes} classes, ${d.n_train} train`),
      ),
    );
    const want = current || (datasets.some((d) => d.id === "digits") ? "digits" : datasets[0]?.id);
    if (want) sel.value = want;
  }

  syncVisibility();
  loadDatasets().then(() => {
    if (params.clone) {
      try {
        const spec = JSON.parse(sessionStorage.getItem("tricklab.cloneSpec") || "{}");
        fill(spec);
        const name = inputs.get("name");
        // from=range: "Use this lr" on a range test already named the job after the lr
        if (name.value && params.from !== "range") name.value = `${name.value} (copy)`;
        const range = spec.lr_range || JSON.parse(sessionStorage.getItem("tricklab.rangeSpec") || "null");
        if (range && params.from === "range") {
          for (const [key, el] of rangeInputs) {
            const v = range[key.split(".")[1]];
            if (typeof v === "number") el.value = String(v);
          }
        }
      } catch {
        /* a bad stored spec: start from the defaults */
      }
    }
    preview();
  });

  return () => {
    stopped = true;
    abort.abort();
    chart.destroy();
  };
}
