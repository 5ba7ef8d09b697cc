// The spec vocabulary read out of the API's OpenAPI document (GET /openapi.json):
// a spec path such as "schedule.decay.min_lr" is walked from the JobSpec schema
// through $refs, nullable anyOf/oneOf and discriminated unions (decay `kind`,
// model `arch`, optimizer `name`), and what the schema says there (enum values,
// bounds, default, description) comes back normalized. Pure functions of the
// document; vocab.js fetches it once per page load.

const ROOT = "#/components/schemas/JobSpec";

/** The node a JSON pointer ("#/components/schemas/X") names. */
function lookup(doc, ref) {
  let node = doc;
  for (const raw of ref.replace(/^#\//, "").split("/")) {
    const part = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    node = node && node[part];
  }
  if (!node) throw new Error(`OpenAPI document: no ${ref}`);
  return node;
}

export function deref(doc, node) {
  for (let hops = 0; node && node.$ref; hops++) {
    if (hops > 32) throw new Error(`OpenAPI document: $ref loop at ${node.$ref}`);
    node = lookup(doc, node.$ref);
  }
  return node;
}

/** The value that selects `variant` in a union on property `prop`. */
function tagOf(doc, variant, prop) {
  const p = deref(doc, (variant.properties || {})[prop]) || {};
  if ("const" in p) return p.const;
  if (Array.isArray(p.enum) && p.enum.length === 1) return p.enum[0];
  return p.default;
}

/** A union's variants as [{value, schema}], in the document's oneOf order. */
function variantsOf(doc, alts, disc) {
  const out = [];
  for (const alt of alts) {
    const schema = deref(doc, alt);
    const value = tagOf(doc, schema, disc.propertyName);
    if (value !== undefined) out.push({ value, schema });
  }
  // a mapping entry no alternative carries a tag for (the mapping is authoritative)
  for (const [value, ref] of Object.entries(disc.mapping || {})) {
    if (!out.some((x) => String(x.value) === value)) out.push({ value, schema: lookup(doc, ref) });
  }
  return out;
}

/** A property whose value is a constant in every alternative: a union without `discriminator`. */
function inferredDiscriminator(doc, alts) {
  const schemas = alts.map((a) => deref(doc, a));
  const isConst = (s, prop) => "const" in (deref(doc, (s.properties || {})[prop]) || {});
  const prop = Object.keys(schemas[0].properties || {}).find((p) => schemas.every((s) => isConst(s, p)));
  return prop ? { propertyName: prop } : null;
}

/**
 * Strip $refs and nullable unions down to one schema, or stop at a discriminated
 * union. Field-level keywords (description, default, title) are taken from the
 * outermost node that has them: pydantic puts them beside the $ref or anyOf.
 */
function unwrap(doc, node) {
  const meta = {};
  let nullable = false;
  for (;;) {
    node = deref(doc, node) || {};
    for (const k of ["description", "default", "title"]) if (k in node && !(k in meta)) meta[k] = node[k];
    const alts = node.anyOf || node.oneOf;
    if (!alts) return { node, meta, nullable, union: null };
    const rest = alts.filter((a) => a.type !== "null");
    if (rest.length < alts.length) nullable = true;
    if (rest.length === 1) {
      node = rest[0];
      continue;
    }
    const disc = node.discriminator || inferredDiscriminator(doc, rest);
    if (!disc) return { node: deref(doc, rest[0]), meta, nullable, union: null };
    return { node, meta, nullable, union: { prop: disc.propertyName, variants: variantsOf(doc, rest, disc) } };
  }
}

/**
 * Every way `path` exists in the spec: [{choice, node, meta, nullable, union}], one
 * per variant of each discriminated union crossed on the way, where `choice` maps
 * the union's spec path to the variant's value ({"optimizer": "adam"}). The
 * discriminator itself ("optimizer.name") resolves once, to an enum of the
 * variants' values (with the union's own description), `discriminates` set to the
 * union's path.
 */
export function resolveAll(doc, path) {
  let states = [{ choice: {}, node: lookup(doc, ROOT), at: "" }];
  for (const part of path.split(".")) {
    const next = [];
    for (const s of states) {
      if (s.discriminates !== undefined) continue; // nothing lies under a tag
      const u = unwrap(doc, s.node);
      const at = s.at ? `${s.at}.${part}` : part;
      if (u.union && part === u.union.prop) {
        const tags = { enum: u.union.variants.map((x) => x.value) };
        const { default: whole, ...meta } = u.meta; // the union's default is a whole variant
        if (whole && typeof whole === "object" && part in whole) meta.default = whole[part];
        next.push({ choice: s.choice, node: tags, meta, nullable: false, union: null, at, discriminates: s.at });
        continue;
      }
      for (const { value, schema } of u.union ? u.union.variants : [{ value: undefined, schema: u.node }]) {
        const child = (schema.properties || {})[part];
        if (child === undefined) continue;
        next.push({ choice: value === undefined ? s.choice : { ...s.choice, [s.at]: value }, node: child, at });
      }
    }
    states = next;
  }
  return states.map((s) => (s.discriminates !== undefined ? s : { ...s, ...unwrap(doc, s.node) }));
}

/** The schema type a form input can edit, or null (an object, a nested union). */
export function inputType(node) {
  if (Array.isArray(node.enum) || "const" in node) return "select";
  if (node.type === "boolean") return "bool";
  if (node.type === "integer") return "int";
  if (node.type === "number") return "number";
  if (node.type === "string") return "text";
  if (node.type === "array") {
    const items = node.items || (node.prefixItems || [])[0] || {};
    if (items.type === "integer") return "intlist";
    if (items.type === "number") return "floatlist";
  }
  return null;
}

/** JSON Schema 2020-12 (OpenAPI 3.1) bounds; also the 3.0 boolean exclusive form. */
function bound(node, side) {
  const incl = side === "min" ? "minimum" : "maximum";
  const excl = side === "min" ? "exclusiveMinimum" : "exclusiveMaximum";
  if (typeof node[excl] === "number") return { value: node[excl], exclusive: true };
  if (typeof node[incl] === "number") return { value: node[incl], exclusive: node[excl] === true };
  return null;
}

/** What a form needs from one resolved path: type, options, bounds, default, description. */
export function describe(state) {
  const { node, meta } = state;
  return {
    type: inputType(node),
    options: Array.isArray(node.enum) ? node.enum : "const" in node ? [node.const] : null,
    min: bound(node, "min"),
    max: bound(node, "max"),
    maxLength: typeof node.maxLength === "number" ? node.maxLength : null,
    def: "default" in meta ? meta.default : node.default,
    description: meta.description || node.description || "",
    title: meta.title || node.title || "",
    nullable: state.nullable,
  };
}

/** The values of an enum schema in components.schemas (JobStatus). */
export function enumOf(doc, name) {
  const node = deref(doc, (doc.components?.schemas || {})[name]);
  if (!node || !Array.isArray(node.enum)) throw new Error(`OpenAPI document: no enum ${name}`);
  return node.enum;
}
