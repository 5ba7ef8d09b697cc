// The sweep form (#/sweeps/new): a base spec from the designer's fields or pasted JSON,
// one row per grid axis (spec path + comma-separated JSON values), seeds and max
// concurrent; Launch → POST /sweeps and the sweep's page. Modelled on searchform.js: a
// 422 is shown beside the field its loc names: the axis row (grid.<path>, or a variant's
// error at an axis path), the base field (base.<path>, or a variant's error elsewhere),
// or the sweep's own fields.

import { api, listOf } from "./api.js";
import { SECTIONS, SWITCHES } from "./fields.js";
import { buildFields } from "./formfields.js";
import { fieldSet } from "./form.js";
import { fieldErrors } from "./fielderrors.js";
import { openapi } from "./vocab.js";
import { h, errorText } from "./util.js";

/** A .field wrapper, as form.js makes them: fieldErrors marks it by its data-path. */
function field(label, path, input, help = "") {
  return h("div", { class: "field", dataset: { path } }, h("label", {}, label), input,
    help ? h("div", { class: "help" }, help) : "", h("div", { class: "err" }));
}

/** "3" → 3 (seeds 0..2); "0, 1, 5" → [0, 1, 5]; anything else stays text (the API names it). */
function seedsOf(text) {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t);
  if (/^\d+(\s*,\s*\d+)+$/.test(t)) return t.split(",").map((s) => Number(s.trim()));
  return t;
}

function intOr(text) {
  const v = Number(text.trim());
  return text.trim() !== "" && Number.isInteger(v) ? v : text;
}

function axisRow(axis, onRemove) {
  const path = h("input", { class: "axis-path mono", value: axis.path, placeholder: "optimizer.lr", "aria-label": "spec path" });
  const values = h("input", { class: "axis-values mono", value: axis.values, placeholder: '0.01, 0.1 or null, {"alpha": 0.2}', "aria-label": "values (comma-separated JSON)" });
  const err = h("div", { class: "err" });
  const row = h("div", { class: "axis-row field" }, path, values,
    h("button", { type: "button", class: "link axis-remove", title: "Remove this axis", onclick: () => onRemove(row) }, "✕"), err);
  const sync = () => { row.dataset.path = `grid.${path.value.trim()}`; };
  path.addEventListener("input", sync);
  row.addEventListener("input", () => {
    row.classList.remove("invalid");
    err.textContent = "";
  });
  sync();
  /** [path, values] or a client-side error message. */
  row.read = () => {
    try {
      const list = JSON.parse(`[${values.value}]`);
      if (!list.length) return { error: "give at least one value" };
      return [path.value.trim(), list];
    } catch {
      return { error: 'values: comma-separated JSON, e.g. 0.01, 0.1 or "cosine", "linear"' };
    }
  };
  return row;
}

export function mountSweepForm(root) {
  const abort = new AbortController();
  let stopped = false;
  const { sections, fields } = buildFields(openapi(), SECTIONS);
  const set = fieldSet(fields, SWITCHES);

  // ------------------------------------------------------------ the base spec
  const designer = h("div", { id: "sweep-base-fields" },
    sections.map((s) => h("fieldset", {}, h("legend", {}, s.title), s.fields.map((f) => set.render(f)))));
  set.reset();
  designer.addEventListener("input", () => { set.syncVariants(true); set.syncVisibility(); });
  designer.addEventListener("change", () => { set.syncVariants(true); set.syncVisibility(); });
  const json = h("textarea", { id: "sweep-base-json", class: "mono", rows: 16, spellcheck: "false", "aria-label": "base spec (JSON)" });
  const jsonField = field("Base (JSON)", "base", json, "A job spec, as POST /jobs takes it.");
  jsonField.classList.add("sweep-json");
  const fromFields = h("input", { type: "radio", name: "sweep-base-mode", id: "sweep-base-mode-fields", value: "fields", checked: true });
  const fromJson = h("input", { type: "radio", name: "sweep-base-mode", id: "sweep-base-mode-json", value: "json" });
  const baseError = h("div", { class: "formerror", id: "sweep-base-error" });
  const showMode = () => {
    designer.hidden = !fromFields.checked;
    jsonField.hidden = !fromJson.checked;
  };
  // switching carries the spec over: fields → JSON text, JSON text → fields
  fromJson.addEventListener("change", () => {
    json.value = JSON.stringify(set.spec(), null, 2);
    baseError.textContent = "";
    showMode();
  });
  fromFields.addEventListener("change", () => {
    try {
      if (json.value.trim()) set.fill(JSON.parse(json.value));
      baseError.textContent = "";
    } catch (e) {
      baseError.textContent = `The JSON is not valid (${e.message}); the fields keep their values.`;
    }
    showMode();
  });
  showMode();

  // -------------------------------------------------------------- the sweep
  const name = h("input", { id: "sweep-f-name", value: "", placeholder: "digits lr × decay" });
  const seeds = h("input", { id: "sweep-f-seeds", value: "1" });
  const concurrent = h("input", { id: "sweep-f-concurrent", type: "number", min: 1, value: 2 });
  const axes = h("div", { id: "sweep-axes" });
  const addAxis = (a) => axes.append(axisRow(a, (row) => row.remove()));
  addAxis({ path: "optimizer.lr", values: "0.01, 0.1" });
  // its own .err comes first: fieldErrors fills the first .err inside a wrapper
  const axesField = field("Axes", "grid", h("span", { class: "muted small" }, "a spec path and its values per row"),
    "Every combination of the values runs, once per seed.");

  const formError = h("div", { class: "formerror", id: "sweep-form-error", role: "alert" });
  const launch = h("button", { type: "submit", class: "primary", id: "launch-sweep" }, "Launch sweep");
  const own = fieldErrors(() => [...form.querySelectorAll(".sweep-own .field, .sweep-json")]);
  const base = fieldErrors(() => [...set.wrappers.values()]);
  const form = h("form", { id: "sweep-form", novalidate: true, autocomplete: "off" },
    h("div", { class: "panel sweep-own" },
      h("h3", {}, "Sweep"),
      field("Name", "name", name),
      field("Seeds", "seeds", seeds, "n runs seeds 0…n−1 of every variant; or a list: 0, 1, 5"),
      field("Max concurrent", "max_concurrent", concurrent),
      axesField,
      axes,
      h("button", { type: "button", id: "add-axis", onclick: () => addAxis({ path: "", values: "" }) }, "Add axis")),
    h("div", { class: "panel" },
      h("div", { class: "spread" }, h("h3", {}, "Base spec"),
        h("span", { class: "row small" }, h("label", {}, fromFields, " designer fields"), h("label", {}, fromJson, " paste JSON"))),
      baseError, designer, jsonField),
    formError,
    h("div", { class: "row" }, launch, h("a", { href: "#/sweeps" }, "Back to sweeps")));
  root.append(h("div", { class: "spread" }, h("h1", {}, "New sweep"),
    h("span", { class: "muted" }, "A grid over spec paths, every variant with the same seeds.")), form);

  form.addEventListener("input", () => { formError.textContent = ""; });

  function baseSpec() {
    if (fromFields.checked) return set.spec();
    try {
      return JSON.parse(json.value);
    } catch (e) {
      jsonField.classList.add("invalid");
      jsonField.querySelector(".err").textContent = `not valid JSON: ${e.message}`;
      return undefined;
    }
  }

  /** Where a 422's detail goes: [own errors or base errors, the loc there]. */
  function target(d, grid) {
    const loc = (d.loc || []).filter((p) => p !== "body").map(String);
    const inBase = (rest, msg) => fromFields.checked
      ? [base, rest, msg]
      : [own, ["base"], `${rest.join(".") || "spec"}: ${msg}`];
    if (loc[0] === "base") return inBase(loc.slice(1), d.msg);
    if (loc[0] === "variants") {
      const rest = loc.slice(2);
      const at = rest.join(".");
      const axis = Object.keys(grid).find((p) => at === p || at.startsWith(`${p}.`));
      const msg = d.variant ? `${d.variant}: ${d.msg}` : d.msg;
      return axis ? [own, ["grid", axis], `${at}: ${msg}`] : inBase(rest, msg);
    }
    return [own, loc, d.msg];
  }

  function showErrors(e, grid) {
    if (!(e.details || []).length) return errorText(e);
    const loose = [];
    for (const d of e.details) {
      const [errs, loc, msg] = target(d, grid);
      const left = errs.show({ details: [{ ...d, loc, msg }] }, "sweep");
      if (left) loose.push(left);
    }
    return loose.join("\n") || "Fix the fields marked in red.";
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    own.clear();
    base.clear();
    formError.textContent = "";
    const grid = {};
    let bad = false;
    for (const row of axes.querySelectorAll(".axis-row")) {
      const got = row.read();
      if (!Array.isArray(got)) {
        row.classList.add("invalid");
        row.querySelector(".err").textContent = got.error;
        bad = true;
      } else grid[got[0]] = got[1];
    }
    const spec = baseSpec();
    if (bad || spec === undefined) return;
    const body = { name: name.value, base: spec, grid, seeds: seedsOf(seeds.value), max_concurrent: intOr(concurrent.value) };
    launch.disabled = true;
    try {
      const made = await api("/sweeps", { method: "POST", body, signal: abort.signal });
      location.hash = `#/sweeps/${encodeURIComponent(made.id)}`;
    } catch (e) {
      if (stopped || e.name === "AbortError") return;
      formError.textContent = showErrors(e, grid);
      const first = own.first() || base.first();
      if (first) first.scrollIntoView({ block: "center", behavior: "smooth" });
    } finally {
      launch.disabled = false;
    }
  });

  // the designer's dataset list: built-ins and uploads
  (async () => {
    const sel = set.inputs.get("data.dataset");
    try {
      const datasets = listOf(await api("/datasets", { signal: abort.signal }));
      if (stopped) return;
      sel.replaceChildren(...datasets.map((d) => h("option", { value: d.id }, `${d.id} — ${d.kind}, ${d.num_classes} classes`)));
      if (datasets.some((d) => d.id === "digits")) sel.value = "digits";
    } catch (e) {
      if (!stopped && e.name !== "AbortError") formError.textContent = `Could not load datasets: ${errorText(e)}`;
    }
  })();

  return () => {
    stopped = true;
    abort.abort();
  };
}
