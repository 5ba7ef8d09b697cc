// Small DOM and formatting helpers shared by the views.

/** h("div", {class: "x", onclick: fn}, child, "text") → Element */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function badge(status) {
  return h("span", { class: `badge ${status || ""}` }, status || "?");
}

export function progressBar(job, wide = false) {
  const f = fraction(job);
  return h(
    "span",
    { class: `bar ${wide ? "wide" : ""} ${job.status || ""}`, title: `${(f * 100).toFixed(1)} %` },
    h("span", { style: `width:${(f * 100).toFixed(1)}%` }),
  );
}

export function fraction(job) {
  const p = job.progress || {};
  if (typeof p.fraction === "number") return Math.max(0, Math.min(1, p.fraction));
  if (job.status === "succeeded") return 1;
  if (p.total_steps) return Math.min(1, (p.step || 0) / p.total_steps);
  return 0;
}

export function num(v, digits = 4) {
  if (v === undefined || v === null || Number.isNaN(v)) return "–";
  if (typeof v !== "number") return String(v);
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(2);
  return Number(v.toPrecision(digits)).toString();
}

export function pct(v) {
  return typeof v === "number" ? `${(v * 100).toFixed(2)} %` : "–";
}

/** created_at may be an ISO string or epoch seconds. */
export function toDate(t) {
  if (t === undefined || t === null) return null;
  if (typeof t === "number") return new Date(t < 1e12 ? t * 1000 : t);
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function duration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function age(t) {
  const d = toDate(t);
  if (!d) return "–";
  return `${duration((Date.now() - d.getTime()) / 1000)} ago`;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Steps per epoch of a job: its plan, or total_steps / epochs from its progress. */
export function stepsPerEpoch(job) {
  const plan = job.plan || {};
  if (plan.steps_per_epoch) return plan.steps_per_epoch;
  const p = job.progress || {};
  if (p.total_steps && p.epochs) return p.total_steps / p.epochs;
  return null;
}

/** "done/total" epochs, counted from the step (progress.epoch is the epoch in progress). */
export function epochLabel(job) {
  const p = job.progress || {};
  if (!p.epochs) return "–";
  const spe = stepsPerEpoch(job);
  const done = spe ? Math.floor((p.step || 0) / spe) : p.epoch || 0;
  return `${Math.min(done, p.epochs)}/${p.epochs}`;
}

export function totalSteps(job) {
  return (job.plan && job.plan.total_steps) || (job.progress && job.progress.total_steps) || null;
}

export function toast(text, ms = 3000) {
  const t = h("div", { class: "toast", role: "status" }, text);
  document.body.append(t);
  setTimeout(() => t.remove(), ms);
}

export function errorText(err) {
  if (!err) return "";
  const lines = [err.message || String(err)];
  for (const d of err.details || []) {
    lines.push(`${(d.loc || []).join(".")}: ${d.msg}`);
  }
  return lines.join("\n");
}
