// Inputs for built fields (formfields.js): one .field wrapper per field, reading
// and writing values, the spec the visible fields make, and a union's fields
// following its variant (bounds, help and, where the variants differ, defaults).

import { h } from "./util.js";
import { infoFor } from "./formfields.js";

export function setPath(obj, path, value) {
  const parts = path.split(".");
  let o = obj;
  for (const p of parts.slice(0, -1)) o = o[p] && typeof o[p] === "object" ? o[p] : (o[p] = {});
  o[parts[parts.length - 1]] = value;
}

export function getPath(obj, path) {
  let o = obj;
  for (const p of path.split(".")) {
    if (o === null || o === undefined || typeof o !== "object" || !(p in o)) return undefined;
    o = o[p];
  }
  return o;
}

const isList = (f) => f.type === "intlist" || f.type === "floatlist";
const isNumber = (f) => f.type === "number" || f.type === "int";
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/** Fields → inputs. `switches`: optional sections that become null while off (fields.js SWITCHES). */
export function fieldSet(fields, switches = []) {
  const byKey = new Map(fields.map((f) => [f.key, f]));
  const inputs = new Map(); // key → input element
  const wrappers = new Map(); // key → .field element
  const shownWith = new Map(); // union field key → the variant info it was last set up with

  const v = (key) => (byKey.has(key) ? read(byKey.get(key)) : undefined);
  const visible = (f) => f.when(v);

  function makeInput(f) {
    const id = `f-${f.key.replace(/[^\w]/g, "-")}`;
    if (f.type === "select") return h("select", { id, name: f.key });
    if (f.type === "bool") return h("input", { id, name: f.key, type: "checkbox" });
    if (isNumber(f)) return h("input", { id, name: f.key, type: "number", step: f.step ?? (f.type === "int" ? 1 : "any"), inputmode: "decimal" });
    return h("input", { id, name: f.key, type: "text", spellcheck: "false" });
  }

  /** The .field wrapper of f: label, input, help, and the .err a 422 fills. */
  function render(f) {
    const input = makeInput(f);
    inputs.set(f.key, input);
    const wrap = h(
      "div",
      { class: "field", dataset: { key: f.key, path: f.path || f.errPath, ...(f.auto ? { auto: "" } : {}) } },
      h("label", { for: input.id }, f.label),
      input,
      h("div", { class: "help" }),
      h("div", { class: "err" }),
    );
    wrappers.set(f.key, wrap);
    return wrap;
  }

  /** Options, bounds, tooltip and help of f from the info that applies now. */
  function applyInfo(f, info) {
    const input = inputs.get(f.key);
    const attr = (name, value) => (value === null || value === undefined ? input.removeAttribute(name) : input.setAttribute(name, String(value)));
    if (isNumber(f)) {
      attr("min", info.min && info.min.value);
      attr("max", info.max && info.max.value);
    }
    if (f.type === "text") attr("maxlength", info.maxLength);
    const options = (info.options || []).map(String);
    if (f.type === "select" && info.options && !same(options, [...input.options].map((o) => o.value))) {
      const keep = input.value;
      input.replaceChildren(...options.map((o) => h("option", { value: o }, o)));
      if (options.includes(keep)) input.value = keep;
    }
    attr("title", info.bounds || null);
    const help = wrappers.get(f.key).querySelector(".help");
    help.textContent = info.help || "";
    help.hidden = !help.textContent;
  }

  function write(f, value) {
    const el = inputs.get(f.key);
    if (f.type === "bool") el.checked = !!value;
    else if (isList(f)) el.value = Array.isArray(value) ? value.join(", ") : value ?? "";
    else el.value = value === null || value === undefined ? "" : String(value);
  }

  function read(f) {
    const el = inputs.get(f.key);
    if (f.type === "bool") return el.checked;
    const raw = el.value.trim();
    if (isNumber(f)) {
      if (raw === "") return f.optional ? undefined : null; // null → the API names the field
      return Number(raw);
    }
    if (isList(f)) return raw === "" ? [] : raw.split(/[\s,]+/).filter(Boolean).map(Number);
    if (f.type === "select") {
      // enum values need not be strings: give back the schema's own value
      const options = (infoFor(f, v) || {}).options || [];
      const i = options.findIndex((o) => String(o) === el.value);
      return i >= 0 ? options[i] : el.value;
    }
    return raw;
  }

  /**
   * Set every union field up for the variant picked now. With `resetDefaults` (the
   * user changed a picker), a field whose default differs from the variant it was
   * last shown under takes the new default: sgd → adam sets lr 0.05 → 0.001,
   * step → exponential sets gamma 0.1 → 0.95.
   */
  function syncVariants(resetDefaults) {
    for (const f of fields) {
      if (!f.unionKey) continue;
      const info = f.variants.get(v(f.unionKey));
      const last = shownWith.get(f.key);
      if (!info || info === last) continue; // hidden now: it keeps its value and its last variant
      applyInfo(f, info);
      if (resetDefaults && last && !same(last.def, info.def)) write(f, info.def);
      shownWith.set(f.key, info);
    }
  }

  function syncVisibility() {
    for (const f of fields) wrappers.get(f.key).hidden = !visible(f);
  }

  /** Every field at its schema default; a union's fields at the picked variant's (else the first's). */
  function reset() {
    shownWith.clear();
    for (const f of fields) {
      if (f.unionKey) continue; // pickers first: the union fields below read them
      applyInfo(f, f.info);
      write(f, f.info.def);
    }
    for (const f of fields) {
      if (!f.unionKey) continue;
      const info = f.variants.get(v(f.unionKey)) || f.variants.values().next().value;
      applyInfo(f, info);
      write(f, info.def);
      shownWith.set(f.key, info);
    }
    syncVisibility();
  }

  function spec() {
    const out = {};
    for (const f of fields) {
      if (!f.path || !visible(f)) continue;
      const val = read(f);
      if (val !== undefined) setPath(out, f.path, val);
    }
    for (const s of switches) if (!s.on(v(s.key))) setPath(out, s.path, null);
    return out;
  }

  function fill(src) {
    // switches first, so `when` sees them; then every field whose condition holds
    // (a union's picker comes before the fields it shows). A value src leaves out
    // gets the default the API would fill in for it.
    for (const s of switches) write(byKey.get(s.key), s.fromSpec(getPath(src, s.path)));
    for (const f of fields) {
      if (!f.path || !visible(f)) continue;
      const val = getPath(src, f.path);
      const def = (infoFor(f, v) || {}).def;
      if (val !== undefined && val !== null) write(f, val);
      else if (val === undefined && def !== undefined) write(f, def);
    }
    syncVariants(false);
    syncVisibility();
  }

  return { inputs, wrappers, render, v, visible, read, write, spec, fill, reset, syncVariants, syncVisibility };
}
