// The designer's "Search…" dialog: the designer's current spec is the search's base,
// one row per dimension of the space (spec path, distribution, range or choices),
// the algorithm, trial count, metric and confirm stage; Start → POST /searches and the
// search page. A 422 is shown beside the row (or field) its loc names; an error in the
// base also marks the designer's own field behind the dialog.

import { api } from "./api.js";
import { fieldErrors } from "./fielderrors.js";
import { h, num } from "./util.js";

const KINDS = ["loguniform", "uniform", "int", "choice"];
const METRICS = ["val_acc", "best_val_acc", "val_loss", "val_ece"];

/** A .field wrapper, as form.js makes them: fieldErrors marks it by its data-path. */
function field(label, path, input, help = "") {
  return h("div", { class: "field", dataset: { path } }, h("label", {}, label), input,
    help ? h("div", { class: "help" }, help) : "", h("div", { class: "err" }));
}

/** A number when the text is one, else the text itself (the API's 422 then names the field). */
function numberOr(text, integer) {
  const t = text.trim();
  const v = Number(t);
  if (t === "" || !Number.isFinite(v)) return t;
  return integer && Number.isInteger(v) ? Math.trunc(v) : v;
}

function dimRow(dim, onRemove) {
  const path = h("input", { class: "dim-path mono", value: dim.path, placeholder: "optimizer.lr", "aria-label": "spec path" });
  const kind = h("select", { class: "dim-kind", "aria-label": "distribution" }, KINDS.map((k) => h("option", { value: k }, k)));
  kind.value = dim.kind;
  const lo = h("input", { class: "dim-lo", value: dim.lo ?? "", placeholder: "low", "aria-label": "low", size: 8 });
  const hi = h("input", { class: "dim-hi", value: dim.hi ?? "", placeholder: "high", "aria-label": "high", size: 8 });
  const choices = h("input", { class: "dim-choices mono", value: dim.choices ?? "", placeholder: 'null, {"alpha": 0.2}', "aria-label": "choices (comma-separated JSON)" });
  const range = h("span", { class: "dim-range" }, lo, " to ", hi);
  const err = h("div", { class: "err" });
  const row = h("div", { class: "dim-row field" },
    path, kind, range, choices,
    h("button", { type: "button", class: "link dim-remove", title: "Remove this dimension", onclick: () => onRemove(row) }, "✕"), err);
  const sync = () => {
    row.dataset.path = `space.${path.value.trim()}`;
    const choice = kind.value === "choice";
    range.hidden = choice;
    choices.hidden = !choice;
  };
  path.addEventListener("input", sync);
  kind.addEventListener("change", sync);
  // an edited row loses its error mark
  row.addEventListener("input", () => {
    row.classList.remove("invalid");
    err.textContent = "";
  });
  sync();
  /** [path, distribution] or a client-side error message. */
  row.read = () => {
    const p = path.value.trim();
    if (kind.value === "choice") {
      try {
        return [p, { choice: JSON.parse(`[${choices.value}]`) }];
      } catch {
        return { error: 'choices: comma-separated JSON values, e.g. null, 0.1, {"alpha": 0.2}' };
      }
    }
    const integer = kind.value === "int";
    return [p, { [kind.value]: [numberOr(lo.value, integer), numberOr(hi.value, integer)] }];
  };
  return row;
}

/** Suggested dimensions for a spec: its lr a decade either way, and label smoothing. */
function suggested(spec) {
  const lr = Number(spec.optimizer && spec.optimizer.lr) || 0.05;
  return [
    { path: "optimizer.lr", kind: "loguniform", lo: num(lr / 10), hi: num(lr * 10) },
    { path: "regularization.label_smoothing", kind: "uniform", lo: "0", hi: "0.2" },
  ];
}

/**
 * Open the dialog over `root` for the base spec `spec`. designerErrors: the designer's
 * fieldErrors, to mark a base field the API names.
 */
export function searchForm(root, spec, designerErrors) {
  const old = document.getElementById("search-dialog");
  if (old) old.remove();
  const name = h("input", { id: "search-f-name", value: `${spec.name || (spec.data && spec.data.dataset) || "job"} search` });
  const algorithm = h("select", { id: "search-f-algorithm" }, ["tpe", "random", "grid"].map((a) => h("option", { value: a }, a)));
  const trials = h("input", { id: "search-f-trials", type: "number", min: 1, value: 12 });
  const concurrent = h("input", { id: "search-f-concurrent", type: "number", min: 1, value: 2 });
  const metric = h("select", { id: "search-f-metric" }, METRICS.map((m) => h("option", { value: m }, m)));
  const mode = h("select", { id: "search-f-mode" }, h("option", { value: "max" }, "max"), h("option", { value: "min" }, "min"));
  metric.addEventListener("change", () => { mode.value = metric.value.endsWith("acc") ? "max" : "min"; });
  const confirmOn = h("input", { id: "search-f-confirm", type: "checkbox", checked: true });
  const topK = h("input", { id: "search-f-topk", type: "number", min: 1, value: 2 });
  const seeds = h("input", { id: "search-f-seeds", type: "number", min: 2, value: 3 });

  const dims = h("div", { id: "search-dims" });
  const remove = (row) => row.remove();
  const addDim = (d) => dims.append(dimRow(d, remove));
  suggested(spec).forEach(addDim);

  const formError = h("div", { class: "formerror", id: "search-form-error", role: "alert" });
  const startBtn = h("button", { type: "submit", class: "primary", id: "start-search" }, "Start search");
  const wrappers = () => [...dialog.querySelectorAll(".field")];
  const errors = fieldErrors(wrappers);
  const form = h("form", { id: "search-form", novalidate: true, autocomplete: "off" },
    h("h2", {}, "Search from this spec"),
    h("p", { class: "muted small" }, "The designer's current spec is the base; each trial sets the paths below in it."),
    field("Name", "name", name),
    h("div", { class: "search-form-grid" },
      field("Algorithm", "algorithm", algorithm),
      field("Trials", "trials", trials),
      field("Max concurrent", "max_concurrent", concurrent),
      field("Metric", "metric", metric),
      field("Mode", "mode", mode),
      field("Confirm", "confirm", confirmOn, "Re-run the best with fresh seeds"),
      field("Top k", "confirm.top_k", topK),
      field("Seeds", "confirm.seeds", seeds)),
    h("h3", {}, "Space"),
    dims,
    h("button", { type: "button", id: "add-dim", onclick: () => addDim({ path: "", kind: "uniform" }) }, "Add dimension"),
    formError,
    h("div", { class: "row end" },
      h("button", { type: "button", id: "cancel-search-form", onclick: () => dialog.close() }, "Close"),
      startBtn));
  const dialog = h("dialog", { id: "search-dialog" }, form);
  root.append(dialog);

  const syncConfirm = () => {
    for (const el of [topK, seeds]) el.closest(".field").hidden = !confirmOn.checked;
  };
  confirmOn.addEventListener("change", syncConfirm);
  syncConfirm();
  form.addEventListener("input", () => { formError.textContent = ""; });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errors.clear();
    if (designerErrors) designerErrors.clear("search");
    formError.textContent = "";
    const space = {};
    let bad = false;
    for (const row of dims.querySelectorAll(".dim-row")) {
      const got = row.read();
      if (!Array.isArray(got)) {
        row.classList.add("invalid");
        row.querySelector(".err").textContent = got.error;
        bad = true;
      } else space[got[0]] = got[1];
    }
    if (bad) return;
    const body = {
      name: name.value,
      base: spec,
      space,
      algorithm: algorithm.value,
      trials: numberOr(trials.value, true),
      max_concurrent: numberOr(concurrent.value, true),
      metric: metric.value,
      mode: mode.value,
      confirm: confirmOn.checked ? { top_k: numberOr(topK.value, true), seeds: numberOr(seeds.value, true) } : null,
    };
    startBtn.disabled = true;
    try {
      const made = await api("/searches", { method: "POST", body });
      dialog.close();
      location.hash = `#/searches/${encodeURIComponent(made.id)}`;
    } catch (e) {
      formError.textContent = errors.show(e, "search") || (e.status === 422 ? "Fix the rows marked in red." : "");
      // an error in the base is the designer's field: mark it there too
      if (designerErrors) designerErrors.show(e, "search", (loc) => (loc[0] === "base" ? loc.slice(1) : []));
    } finally {
      startBtn.disabled = false;
    }
  });
  dialog.showModal();
  return dialog;
}
