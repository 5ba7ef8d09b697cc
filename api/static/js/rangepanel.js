// The designer's LR range test launcher. Not part of the form's spec (lr_range is
// a 422 on a training job): the button POSTs the current form as task
// lr_range_test with these settings, whose bounds and defaults are the schema's.

import { api } from "./api.js";
import { RANGE_FIELDS } from "./fields.js";
import { buildFields } from "./formfields.js";
import { fieldSet } from "./form.js";
import { h } from "./util.js";

/**
 * buildSpec() → the form's training spec; errors: the designer's fieldErrors over
 * every wrapper, this panel's included. Returns {el, wrappers, fill(range), clear()}.
 */
export function rangePanel(doc, buildSpec, errors) {
  const { fields } = buildFields(doc, [{ title: "", fields: RANGE_FIELDS }]);
  const set = fieldSet(fields);
  const rangeError = h("div", { class: "formerror", id: "range-error", role: "alert" });
  const button = h("button", { type: "button", id: "run-range-test", onclick: () => launch() }, "Run LR range test");
  const el = h("div", { class: "panel range-panel", id: "range-panel" },
    h("h3", {}, "LR range test"),
    h("p", { class: "muted small" }, "Train a throwaway copy of this form's model while the lr grows exponentially, then pick lr from the loss curve (Smith 2017; fastai lr_find)."),
    fields.map((f) => set.render(f)),
    rangeError,
    h("div", { class: "row" }, button));
  set.reset();

  async function launch() {
    errors.clear();
    rangeError.textContent = "";
    button.disabled = true;
    const spec = buildSpec();
    spec.task = "lr_range_test";
    spec.lr_range = set.spec().lr_range;
    spec.name = `LR range: ${spec.name || spec.data.dataset}`.slice(0, 200);
    try {
      const job = await api("/jobs", { method: "POST", body: spec });
      location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    } catch (e) {
      rangeError.textContent = errors.show(e, "submit") || (e.status === 422 ? "Fix the fields marked in red." : "");
    } finally {
      button.disabled = false;
    }
  }

  return {
    el,
    wrappers: set.wrappers,
    /** The range settings of a cloned job (or the range test it came from). */
    fill: (range) => set.fill({ lr_range: range }),
    clear: () => (rangeError.textContent = ""),
  };
}
