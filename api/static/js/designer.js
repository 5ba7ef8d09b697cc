// Schedule designer (#/new): a form over the job spec, a live lr preview
// (debounced POST /schedules/preview) and Submit → POST /jobs. Errors from
// either call are shown beside the field their `loc` names. The form's layout is
// fields.js; its vocabulary (options, bounds, defaults, help) is the OpenAPI
// document's (vocab.js).

import { api, listOf } from "./api.js";
import { Chart } from "./charts.js";
import { SECTIONS, SWITCHES } from "./fields.js";
import { buildFields } from "./formfields.js";
import { fieldSet } from "./form.js";
import { fieldErrors } from "./fielderrors.js";
import { rangePanel } from "./rangepanel.js";
import { searchForm } from "./searchform.js";
import { openapi } from "./vocab.js";
import { h, debounce, num, errorText } from "./util.js";

const PREVIEW_MS = 250;

/** steps per epoch as tricks.spec.steps_per_epoch computes it, from the dataset's size. */
function stepsPerEpoch(meta, valFraction, batch) {
  if (!meta || !(batch >= 1)) return null;
  let nTrain = meta.n_train;
  if (!meta.n_val) nTrain = meta.n_train - Math.max(1, Math.round(meta.n_train * valFraction));
  return Math.max(1, Math.floor(nTrain / batch));
}

// the preview body is {lr, epochs, steps_per_epoch, schedule}; point its locs into the spec
const previewLoc = (loc) => {
  const head = { lr: ["optimizer", "lr"], epochs: ["training", "epochs"], steps_per_epoch: ["training", "batch_size"] }[loc[0]];
  return head ? [...head, ...loc.slice(1)] : loc;
};

export function mountDesigner(root, params) {
  const abort = new AbortController();
  let stopped = false;
  let datasets = [];
  const doc = openapi();
  const { sections, fields } = buildFields(doc, SECTIONS);
  const set = fieldSet(fields, SWITCHES);
  const buildSpec = () => set.spec();

  // ------------------------------------------------------------------ the form
  const formError = h("div", { class: "formerror", id: "form-error", role: "alert" });
  const submitBtn = h("button", { type: "submit", class: "primary", id: "submit-job" }, "Submit job");
  const form = h("form", { id: "designer-form", novalidate: true, autocomplete: "off" },
    sections.map((s) => h("fieldset", {}, h("legend", {}, s.title), s.fields.map((f) => set.render(f)))),
    formError,
    h("div", { class: "row" }, submitBtn,
      // a hyperparameter search with this spec as its base (searchform.js)
      h("button", { type: "button", id: "search-button", onclick: () => searchForm(root, buildSpec(), errors) }, "Search…")));
  set.reset();

  let range = null;
  const errors = fieldErrors(() => [...set.wrappers.values(), ...(range ? range.wrappers.values() : [])]);
  range = rangePanel(doc, buildSpec, errors);

  // --------------------------------------------------------------- preview
  const previewBox = h("div", { id: "preview-chart" });
  const previewInfo = h("div", { class: "muted small", id: "preview-info" }, "…");
  const previewError = h("div", { class: "formerror", id: "preview-error" });
  root.append(
    h("div", { class: "spread" }, h("h1", {}, "New job"), h("span", { class: "muted" }, "Design the schedule; the curve follows as you type.")),
    h("div", { class: "designer" },
      form,
      h("div", { class: "preview" },
        h("div", { class: "panel" }, h("h3", {}, "Planned learning rate"), previewBox, previewInfo, previewError),
        range.el)),
  );
  const chart = new Chart(previewBox, { title: "", series: [{ label: "lr", color: "#2563eb", width: 2 }], height: 300 });

  function clearErrors(source) {
    errors.clear(source);
    if (!source || source === "submit") formError.textContent = "";
    if (!source) range.clear();
    if (!source || source === "preview") previewError.textContent = "";
  }

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
      previewError.textContent = errors.show(e, "preview", previewLoc);
    }
  }
  const previewSoon = debounce(preview, PREVIEW_MS);

  // -------------------------------------------------------------- events
  // a select fires input then change; whichever comes first moves the union's
  // fields to the new variant (the second finds nothing to do)
  const edited = () => {
    set.syncVariants(true);
    set.syncVisibility();
    previewSoon();
  };
  form.addEventListener("input", () => {
    clearErrors("submit");
    edited();
  });
  form.addEventListener("change", edited);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors();
    submitBtn.disabled = true;
    try {
      const job = await api("/jobs", { method: "POST", body: buildSpec() });
      location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    } catch (e) {
      formError.textContent = errors.show(e, "submit") || (e.status === 422 ? "Fix the fields marked in red." : "");
      const first = errors.first();
      if (first) first.scrollIntoView({ block: "center", behavior: "smooth" });
    } finally {
      submitBtn.disabled = false;
    }
  });

  // -------------------------------------------------------------- start
  async function loadDatasets() {
    const sel = set.inputs.get("data.dataset");
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

  loadDatasets().then(() => {
    if (params.clone) {
      try {
        const spec = JSON.parse(sessionStorage.getItem("tricklab.cloneSpec") || "{}");
        set.fill(spec);
        const name = set.inputs.get("name");
        // from=range: "Use this lr" on a range test already named the job after the lr
        if (name.value && params.from !== "range") name.value = `${name.value} (copy)`;
        const stored = spec.lr_range || JSON.parse(sessionStorage.getItem("tricklab.rangeSpec") || "null");
        if (stored && params.from === "range") range.fill(stored);
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
