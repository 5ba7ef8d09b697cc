// The designer's fields: the layout (fields.js) filled in from the OpenAPI
// document. Each field gets its input type, options, bounds, default and help from
// the schema at its spec path. A path under a discriminated union (optimizer.lr)
// carries one set per variant (sgd's lr default is not adam's) and shows only
// while the chosen variant has it; a variant's properties that no layout line
// names (a decay kind added to tricks/spec) get fields of their own.

import { resolveAll, describe } from "./openapi.js";

const LISTS = new Set(["intlist", "floatlist"]);

function boundsText(info) {
  const lo = info.min ? `${info.min.value} ${info.min.exclusive ? "<" : "≤"} ` : "";
  const hi = info.max ? ` ${info.max.exclusive ? "<" : "≤"} ${info.max.value}` : "";
  return lo || hi ? `${lo}value${hi}` : "";
}

/** One variant's (or a plain path's) vocabulary, as the form uses it. */
function infoFrom(d, layout, type) {
  const def = d.def !== undefined ? d.def : layout.def;
  const help = [d.description, LISTS.has(type) ? "Comma-separated." : ""].filter(Boolean).join(" ");
  const info = { options: d.options, min: d.min, max: d.max, maxLength: d.maxLength, def, help, nullable: d.nullable };
  info.bounds = boundsText(info);
  return info;
}

/** The union a field's path crosses ("optimizer"), or "" for none. Nested unions: the outermost. */
const unionOf = (state) => Object.keys(state.choice)[0] ?? "";

function fromLayout(doc, layout) {
  if (!layout.path) {
    const d = layout.errPath ? resolveAll(doc, layout.errPath).map(describe)[0] : null;
    const info = { options: layout.options || null, def: layout.def, help: d ? d.description : "", bounds: "" };
    return { ...layout, type: layout.type, info, union: "", variants: null };
  }
  let states = resolveAll(doc, layout.path);
  if (layout.type) states = states.filter((s) => describe(s).type === layout.type);
  if (!states.length) {
    console.warn(`designer: the spec has no ${layout.path}${layout.type ? ` of type ${layout.type}` : ""}; field ${layout.key} left out`);
    return null;
  }
  const first = describe(states[0]);
  const type = layout.select ? "select" : first.type;
  if (!type) {
    console.warn(`designer: ${layout.path} is not something a form input can edit; field ${layout.key} left out`);
    return null;
  }
  if (states[0].discriminates !== undefined) {
    const info = infoFrom(first, layout, type);
    if (!info.options.includes(info.def)) info.def = info.options.includes(layout.def) ? layout.def : info.options[0];
    return { ...layout, type, info, union: "", variants: null, discriminates: states[0].discriminates };
  }
  const union = unionOf(states[0]);
  // variants where the path has another type are left to another line (or an auto field)
  states = states.filter((s) => layout.select || describe(s).type === type);
  const field = { ...layout, type, union, optional: states.some((s) => s.nullable) };
  if (!union) return { ...field, info: infoFrom(first, layout, type), variants: null };
  field.variants = new Map();
  for (const s of states) {
    const value = s.choice[union];
    if (!field.variants.has(value)) field.variants.set(value, infoFrom(describe(s), layout, type));
  }
  return field;
}

/** Fields for the properties of a union's variants that no built field covers. */
function autoFields(doc, unionPath, fields) {
  const [u] = resolveAll(doc, unionPath);
  if (!u || !u.union) return [];
  const groups = new Map(); // `${path} ${type}` → field
  for (const { value, schema } of u.union.variants) {
    for (const prop of Object.keys(schema.properties || {})) {
      if (prop === u.union.prop) continue;
      const path = `${unionPath}.${prop}`;
      if (fields.some((f) => f.path === path && f.variants && f.variants.has(value))) continue;
      const state = resolveAll(doc, path).find((s) => s.choice[unionPath] === value);
      const d = state && describe(state);
      if (!d || !d.type) continue; // an object or a nested union: the API's default applies
      const id = `${path} ${d.type}`;
      if (!groups.has(id)) {
        const taken = [...groups.values()].some((g) => g.path === path); // the same name, another type
        const key = taken ? `auto.${path}.${d.type}` : `auto.${path}`;
        groups.set(id, { key, path, label: d.title || prop, type: d.type, union: unionPath, optional: false, variants: new Map(), auto: true });
      }
      const f = groups.get(id);
      f.optional ||= d.nullable;
      f.variants.set(value, infoFrom(d, {}, d.type));
    }
  }
  return [...groups.values()];
}

/**
 * The layout's sections with every field filled in from `doc`. A field:
 * {key, path, label, type, step, optional, when(v), union, unionKey, info | variants},
 * where `variants` maps a union's variant value to its info, and unionKey is the
 * key of the field that picks the variant.
 */
export function buildFields(doc, layoutSections) {
  const sections = layoutSections.map((s) => ({ title: s.title, fields: s.fields.map((l) => fromLayout(doc, l)).filter(Boolean) }));
  const all = () => sections.flatMap((s) => s.fields);
  const pickers = new Map(all().filter((f) => f.discriminates !== undefined).map((f) => [f.discriminates, f]));
  const unions = new Set([...pickers.keys(), ...all().map((f) => f.union).filter(Boolean)]);
  for (const unionPath of unions) {
    const picker = pickers.get(unionPath);
    if (!picker) {
      console.warn(`designer: no field picks the variant of ${unionPath}; its fields are left out`);
      for (const s of sections) s.fields = s.fields.filter((f) => f.union !== unionPath);
      continue;
    }
    const section = sections.find((s) => s.fields.includes(picker));
    const under = (f) => f.path === picker.path || f.union === unionPath;
    const last = section.fields.findLastIndex(under);
    section.fields.splice(last + 1, 0, ...autoFields(doc, unionPath, all()));
  }
  for (const f of all()) {
    const layoutWhen = f.when;
    f.unionKey = f.union ? pickers.get(f.union).key : null;
    f.when = (v) => (!f.unionKey || f.variants.has(v(f.unionKey))) && (!layoutWhen || layoutWhen(v));
  }
  return { sections, fields: all() };
}

/** The info that applies now: the chosen variant's, or the field's only one. */
export function infoFor(f, v) {
  return f.variants ? f.variants.get(v(f.unionKey)) : f.info;
}
