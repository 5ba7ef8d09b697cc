// Jobs list: polls GET /jobs every 2 s, filters by status, keeps rows in place so
// checkboxes (for Compare) survive updates.

import { api, listOf } from "./api.js";
import { h, badge, progressBar, pct, age, epochLabel, errorText } from "./util.js";
import { STATUSES } from "./vocab.js";

const POLL_MS = 2000;
const selected = new Set(); // survives navigation within the page

export function mountJobs(root, params) {
  let status = params.status || "";
  let timer = null;
  let stopped = false;
  const rows = new Map();

  const filter = h(
    "select",
    { id: "status-filter", "aria-label": "Filter by status" },
    h("option", { value: "" }, "all statuses"),
    STATUSES.map((s) => h("option", { value: s }, s)),
  );
  filter.value = status;
  filter.addEventListener("change", () => {
    status = filter.value;
    history.replaceState(null, "", status ? `#/?status=${status}` : "#/");
    for (const tr of rows.values()) tr.remove();
    rows.clear();
    refresh();
  });
  const compareBtn = h("button", { type: "button", id: "compare-button", onclick: () => {
    location.hash = `#/compare?ids=${[...selected].map(encodeURIComponent).join(",")}`;
  } }, "Compare");
  const count = h("span", { class: "muted small" });
  const note = h("div", { class: "formerror" });
  const tbody = h("tbody");
  const empty = h("div", { class: "empty" }, "Loading…");

  root.append(
    h("div", { class: "spread" },
      h("div", { class: "row" }, h("h1", {}, "Jobs"), count),
      h("div", { class: "row" }, filter, compareBtn, h("a", { class: "button primary", href: "#/new", id: "new-job" }, "New job"))),
    note,
    h("div", { class: "panel", style: "padding:0" },
      h("table", { id: "jobs-table" },
        h("thead", {}, h("tr", {},
          h("th", { style: "width:28px" }), h("th", {}, "Name"), h("th", {}, "Status"), h("th", {}, "Progress"),
          h("th", { class: "num" }, "Epoch"), h("th", { class: "num" }, "Best val acc"), h("th", { class: "num" }, "Age"))),
        tbody),
      empty),
  );

  function syncCompare() {
    compareBtn.disabled = selected.size < 1;
    compareBtn.textContent = selected.size ? `Compare (${selected.size})` : "Compare";
  }

  function rowFor(job) {
    let tr = rows.get(job.id);
    if (!tr) {
      const box = h("input", { type: "checkbox", "aria-label": `select ${job.id}`, checked: selected.has(job.id) });
      box.addEventListener("change", () => {
        if (box.checked) selected.add(job.id);
        else selected.delete(job.id);
        syncCompare();
      });
      tr = h("tr", { dataset: { id: job.id } }, h("td", {}, box), h("td"), h("td"), h("td"), h("td", { class: "num" }), h("td", { class: "num" }), h("td", { class: "num muted" }));
      rows.set(job.id, tr);
    }
    const [, name, st, prog, epoch, best, ageTd] = tr.children;
    const href = `#/jobs/${encodeURIComponent(job.id)}`;
    name.replaceChildren(h("a", { href, class: "job-link" }, job.name || job.id), h("div", { class: "muted small mono" }, job.id));
    st.replaceChildren(badge(job.status));
    prog.replaceChildren(progressBar(job));
    epoch.textContent = epochLabel(job);
    const b = job.best || {};
    // best.epoch is 0-based in the API; people count epochs from 1
    best.textContent = typeof b.val_acc === "number" ? `${pct(b.val_acc)} (ep ${b.epoch + 1})` : "–";
    ageTd.textContent = age(job.created_at);
    return tr;
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const q = new URLSearchParams({ limit: "100" });
      if (status) q.set("status", status);
      const body = await api(`/jobs?${q}`);
      if (stopped) return;
      const jobs = listOf(body);
      note.textContent = "";
      const seen = new Set();
      jobs.forEach((job, i) => {
        seen.add(job.id);
        const tr = rowFor(job);
        if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
      });
      for (const [id, tr] of rows) if (!seen.has(id)) { tr.remove(); rows.delete(id); }
      empty.textContent = jobs.length ? "" : status ? `No ${status} jobs.` : "No jobs yet: design one under New job.";
      empty.hidden = jobs.length > 0;
      const total = body && typeof body.count === "number" ? body.count : jobs.length;
      count.textContent = `${total} job${total === 1 ? "" : "s"}${total > jobs.length ? ` (newest ${jobs.length} shown)` : ""}`;
    } catch (e) {
      if (stopped) return;
      note.textContent = `Could not load jobs: ${errorText(e)}`;
    }
    if (!stopped) timer = setTimeout(refresh, POLL_MS);
  }

  syncCompare();
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
