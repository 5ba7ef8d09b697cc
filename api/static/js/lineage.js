// Forks on the job page: the parent this job was forked from (POST /jobs/{id}/fork
// writes lineage {parent, from_epoch, from_step} on the child and appends
// {id, from_epoch} to the parent's lineage.children), links both ways, and the
// parent's curves before the fork point, which the page draws faint and dashed
// under its own: a fork's own history starts at from_step (tricks/fork.py).

import { api } from "./api.js";
import { h } from "./util.js";

const link = (id, name, cls) => h("a", { href: `#/jobs/${encodeURIComponent(id)}`, class: cls, dataset: { id } }, name || id);

/** The lineage panel; render(job) fills it (hidden when the job has no parent or forks). */
export function lineagePanel(signal) {
  const names = new Map(); // job id → name, read once per job
  const el = h("div", { class: "panel", id: "job-lineage", hidden: true });
  let shown = "";

  async function nameOf(id) {
    if (names.has(id)) return names.get(id);
    names.set(id, null);
    try {
      const j = await api(`/jobs/${encodeURIComponent(id)}`, { signal });
      names.set(id, j.name || id);
    } catch {
      names.set(id, id); // deleted, or another tenant's: the id says enough
    }
    return names.get(id);
  }

  function draw(job) {
    const lin = job.lineage || {};
    const kids = Array.isArray(lin.children) ? lin.children : [];
    const parts = [h("h3", {}, "Lineage")];
    if (lin.parent) {
      parts.push(h("div", { id: "lineage-parent-row" }, "Forked from ", link(lin.parent, names.get(lin.parent), "lineage-parent"),
        ` after epoch ${lin.from_epoch} (step ${lin.from_step}); its curves up to there are drawn dashed on the charts, "parent …" in their legends.`));
    }
    if (kids.length) {
      parts.push(h("div", { style: lin.parent ? "margin-top:6px" : "" }, `Forks of this job (${kids.length}):`),
        h("ul", { id: "lineage-children", class: "lineage-children" },
          kids.map((c) => h("li", {}, link(c.id, names.get(c.id), "lineage-child"), h("span", { class: "muted" }, ` from after epoch ${c.from_epoch}`)))));
    }
    el.replaceChildren(...parts);
    el.hidden = !lin.parent && !kids.length;
  }

  function render(job) {
    const lin = job.lineage || {};
    const ids = [lin.parent, ...(Array.isArray(lin.children) ? lin.children.map((c) => c.id) : [])].filter(Boolean);
    const key = JSON.stringify([lin, ids.map((i) => names.get(i))]);
    if (key === shown) return;
    shown = key;
    draw(job);
    const missing = ids.filter((i) => !names.has(i));
    if (missing.length) Promise.all(missing.slice(0, 50).map(nameOf)).then(() => { shown = ""; render(job); });
  }

  return { el, render };
}

/**
 * The parent's series before the fork: {name: {x, y}} with every step < fromStep,
 * for `metrics` (curves) and "lr" (the lr it trained with).
 */
export async function parentCurves(parentId, fromStep, metrics, signal) {
  const q = new URLSearchParams({ metrics: [...metrics, "lr"].join(","), max_points: "2000" });
  const body = await api(`/jobs/${encodeURIComponent(parentId)}/curves?${q}`, { signal });
  const out = {};
  for (const [name, s] of Object.entries((body && body.series) || {})) {
    const x = [];
    const y = [];
    (s.step || []).forEach((st, i) => {
      if (st < fromStep) {
        x.push(st);
        y.push(s.value[i]);
      }
    });
    out[name] = { x, y };
  }
  return out;
}
