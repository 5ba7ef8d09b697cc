// Jobs list as a runs table: polls GET /jobs every 2 s with the view's sort and
// filters (server-side: sort=, status=, tag=, q=), extra columns picked from spec
// paths and metrics, rows grouped by sweep (or search). The whole view lives in
// the URL (#/?cols=optimizer.lr,metrics.val_loss&sort=-best.val_acc&tag=x&q=y&
// status=succeeded&group=sweep) so it can be shared. Rows stay in place across
// polls so checkboxes (for Compare) survive updates.

import { api, listOf } from "./api.js";
import { h, badge, progressBar, pct, num, age, duration, errorText, debounce } from "./util.js";
import { STATUSES } from "./vocab.js";

const POLL_MS = 2000;
const LIMIT = 100;
const selected = new Set(); // survives navigation within the page

// Row fields a column may name; anything else is a spec path (optimizer.lr → spec.optimizer.lr).
const ROW_ROOTS = ["metrics", "best", "progress", "plan", "duration_s", "created_at", "started_at", "finished_at", "attempts", "name", "status"];

/** The columns offered in the picker: [id, label]. Any other spec path can be typed in. */
export const METRIC_COLUMNS = [
  ["metrics.val_acc", "final val acc"],
  ["best.val_acc", "best val acc"],
  ["metrics.val_loss", "val loss"],
  ["metrics.val_ece", "val ECE"],
  ["metrics.train_loss", "train loss"],
  ["duration_s", "duration"],
  ["progress.samples_per_second", "samples/s"],
  ["plan.parameters", "parameters"],
];
export const SPEC_COLUMNS = [
  "optimizer.name", "optimizer.lr", "optimizer.weight_decay", "optimizer.momentum",
  "schedule.decay.kind", "schedule.warmup.epochs", "schedule.per",
  "regularization.label_smoothing", "regularization.mixup.alpha", "regularization.dropout",
  "model.arch", "data.dataset", "training.epochs", "training.batch_size", "training.seed",
];

function isRowField(col) {
  return ROW_ROOTS.includes(col.split(".")[0]);
}

/** The sort= path for a column id. */
export function sortPath(col) {
  return isRowField(col) ? col : `spec.${col}`;
}

function labelOf(col) {
  const m = METRIC_COLUMNS.find(([id]) => id === col);
  return m ? m[1] : col;
}

function valueAt(job, col) {
  let node = isRowField(col) ? job : job.spec || {};
  for (const part of col.split(".")) {
    if (node === null || typeof node !== "object") return undefined;
    node = node[part];
  }
  return node;
}

function cellText(col, v) {
  if (v === undefined || v === null) return "–";
  if (col === "duration_s") return duration(v);
  if (col.endsWith("val_acc")) return pct(v);
  if (col === "progress.samples_per_second") return Math.round(v).toLocaleString();
  if (typeof v === "number") return num(v);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** The view's state from the URL's query (app.js hands it over as params). */
function stateOf(params) {
  return {
    cols: (params.cols || "").split(",").map((s) => s.trim()).filter(Boolean),
    sort: params.sort || "",
    status: params.status || "",
    tag: params.tag || "",
    q: params.q || "",
    group: params.group || "",
  };
}

function hashOf(st) {
  const q = new URLSearchParams();
  if (st.cols.length) q.set("cols", st.cols.join(","));
  for (const k of ["sort", "status", "tag", "q", "group"]) if (st[k]) q.set(k, st[k]);
  const s = q.toString();
  return s ? `#/?${s}` : "#/";
}

export function mountJobs(root, params) {
  const st = stateOf(params);
  let timer = null;
  let stopped = false;
  let seq = 0; // answers to an older query are dropped
  const rows = new Map();

  // ------------------------------------------------------------- controls
  const filter = h(
    "select",
    { id: "status-filter", "aria-label": "Filter by status" },
    h("option", { value: "" }, "all statuses"),
    STATUSES.map((s) => h("option", { value: s }, s)),
  );
  filter.value = st.status;
  const tagInput = h("input", { id: "tag-filter", type: "search", placeholder: "tag", "aria-label": "Filter by tag", value: st.tag, size: 12 });
  const qInput = h("input", { id: "search-q", type: "search", placeholder: "search names", "aria-label": "Search job names", value: st.q, size: 16 });
  const groupSel = h(
    "select",
    { id: "group-by", "aria-label": "Group rows" },
    h("option", { value: "" }, "no grouping"),
    h("option", { value: "sweep" }, "group by sweep"),
    h("option", { value: "search" }, "group by search"),
  );
  groupSel.value = st.group;

  const compareBtn = h("button", { type: "button", id: "compare-button", onclick: () => {
    location.hash = `#/compare?ids=${[...selected].map(encodeURIComponent).join(",")}`;
  } }, "Compare");
  const count = h("span", { class: "muted small", id: "jobs-count" });
  const note = h("div", { class: "formerror", id: "jobs-error" });
  const thead = h("thead");
  const tbody = h("tbody");
  const empty = h("div", { class: "empty" }, "Loading…");
  const picker = columnPicker();

  root.append(
    h("div", { class: "spread" },
      h("div", { class: "row" }, h("h1", {}, "Jobs"), count),
      h("div", { class: "row" }, filter, tagInput, qInput, groupSel, picker, compareBtn, h("a", { class: "button primary", href: "#/new", id: "new-job" }, "New job"))),
    note,
    h("div", { class: "panel scroll", style: "padding:0" }, h("table", { id: "jobs-table", class: "runs" }, thead, tbody), empty),
  );

  /** The state changed: put it in the URL (no re-mount) and reload. */
  function changed({ rebuild = false } = {}) {
    history.replaceState(null, "", hashOf(st));
    if (rebuild) {
      for (const tr of rows.values()) tr.remove();
      rows.clear();
    }
    renderHead();
    refresh();
  }
  filter.addEventListener("change", () => { st.status = filter.value; changed(); });
  groupSel.addEventListener("change", () => { st.group = groupSel.value; changed(); });
  const onText = debounce(() => {
    st.tag = tagInput.value.trim();
    st.q = qInput.value.trim();
    changed();
  }, 300);
  tagInput.addEventListener("input", onText);
  qInput.addEventListener("input", onText);

  function columnPicker() {
    const list = h("div", { class: "picker-list" });
    const custom = h("input", { id: "col-custom", placeholder: "spec path, e.g. optimizer.nesterov", size: 26 });
    const addCustom = () => {
      const v = custom.value.trim().replace(/^spec\./, "");
      if (v && !st.cols.includes(v)) {
        st.cols.push(v);
        custom.value = "";
        drawList();
        changed({ rebuild: true });
      }
    };
    custom.addEventListener("keydown", (ev) => { if (ev.key === "Enter") { ev.preventDefault(); addCustom(); } });
    function box(id, label) {
      const cb = h("input", { type: "checkbox", checked: st.cols.includes(id), dataset: { col: id } });
      cb.addEventListener("change", () => {
        if (cb.checked && !st.cols.includes(id)) st.cols.push(id);
        if (!cb.checked) st.cols = st.cols.filter((c) => c !== id);
        changed({ rebuild: true });
      });
      return h("label", { class: "pick" }, cb, " ", label);
    }
    function drawList() {
      const known = new Set([...METRIC_COLUMNS.map(([id]) => id), ...SPEC_COLUMNS]);
      list.replaceChildren(
        h("div", { class: "muted small" }, "Metrics"),
        ...METRIC_COLUMNS.map(([id, label]) => box(id, label)),
        h("div", { class: "muted small" }, "Spec"),
        ...SPEC_COLUMNS.map((id) => box(id, id)),
        ...st.cols.filter((c) => !known.has(c)).map((c) => box(c, c)),
        h("div", { class: "row" }, custom, h("button", { type: "button", onclick: addCustom }, "Add")),
      );
    }
    drawList();
    return h("details", { class: "picker", id: "column-picker" }, h("summary", { class: "button" }, "Columns"), list);
  }

  // -------------------------------------------------------------- the table
  // fixed columns: [label, sort path or null, class]
  const FIXED = [
    ["Name", "name", ""], ["Status", "status", ""], ["Progress", null, ""],
    ["Epoch", null, "num"], ["Best val acc", "best.val_acc", "num"],
  ];

  function sortHeader(label, path, cls, col) {
    const cur = st.sort.replace(/^-/, "");
    const desc = st.sort.startsWith("-");
    const arrow = path && cur === path ? (desc ? " ▼" : " ▲") : "";
    const th = h("th", { class: `${cls} ${path ? "sortable" : ""}`, dataset: col ? { col } : {}, title: path ? `sort by ${path}` : undefined }, label, arrow);
    if (path) {
      th.dataset.sort = path;
      th.addEventListener("click", () => {
        // first click ascending, then toggle; Age sorts newest first
        st.sort = cur === path ? (desc ? path : `-${path}`) : path;
        changed();
      });
    }
    return th;
  }

  function renderHead() {
    thead.replaceChildren(h("tr", {},
      h("th", { style: "width:28px" }),
      ...FIXED.map(([label, path, cls]) => sortHeader(label, path, cls)),
      ...st.cols.map((c) => sortHeader(labelOf(c), sortPath(c), "num", c)),
      sortHeader("Age", "created_at", "num")));
  }

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
      tr = h("tr", { dataset: { id: job.id } }, h("td", {}, box), h("td"), h("td"), h("td"), h("td", { class: "num" }), h("td", { class: "num" }),
        ...st.cols.map((c) => h("td", { class: "num", dataset: { col: c } })), h("td", { class: "num muted" }));
      rows.set(job.id, tr);
    }
    const [, name, stTd, prog, epoch, best, ...rest] = tr.children;
    const ageTd = rest.pop();
    const href = `#/jobs/${encodeURIComponent(job.id)}`;
    const tags = (job.tags || []).map((t) => h("span", { class: "tag", dataset: { tag: t } }, t));
    name.replaceChildren(h("a", { href, class: "job-link" }, job.name || job.id), tags.length ? h("span", { class: "tags" }, ...tags) : "",
      h("div", { class: "muted small mono" }, job.id));
    // a queued job no live worker can run says why (pending_reason, from the heartbeats)
    stTd.replaceChildren(badge(job.status),
      job.pending_reason ? h("div", { class: "muted small pending-reason", title: job.pending_reason }, job.pending_reason) : "");
    prog.replaceChildren(progressBar(job));
    epoch.textContent = epochCell(job);
    const b = job.best || {};
    // best.epoch is 0-based in the API; people count epochs from 1
    best.textContent = typeof b.val_acc === "number" ? `${pct(b.val_acc)} (ep ${b.epoch + 1})` : "–";
    st.cols.forEach((c, i) => { rest[i].textContent = cellText(c, valueAt(job, c)); });
    ageTd.textContent = age(job.created_at);
    return tr;
  }

  // Epochs 1-based, as the CLI shows them (docs/conventions.md, Epochs): index 8 of 20 is
  // "9/20"; a job before its first update (queued, step 0) shows "—/20", not "1/20".
  function epochCell(job) {
    const p = job.progress || {};
    if (!p.epochs) return "–";
    if (job.status === "queued" && !p.step) return `—/${p.epochs}`;
    return `${Math.min((p.epoch || 0) + 1, p.epochs)}/${p.epochs}`;
  }

  function groupKey(job) {
    if (st.group === "sweep") return job.sweep_id || "";
    if (st.group === "search") return job.search_id || (job.search && job.search.id) || "";
    return null;
  }

  function groupRow(key, n) {
    const width = 7 + st.cols.length;
    const what = st.group === "sweep" ? "sweep" : "search";
    const label = key
      ? [`${what} `, h("a", { href: `#/${what === "sweep" ? "sweeps" : "searches"}/${encodeURIComponent(key)}`, class: "mono" }, key)]
      : [`no ${what}`];
    return h("tr", { class: "group-row", dataset: { group: key } }, h("td", { colspan: width }, ...label, h("span", { class: "muted small" }, ` · ${n} job${n === 1 ? "" : "s"}`)));
  }

  /** Lay out rows in the API's order; grouped, each group where its first row falls. */
  function layout(jobs) {
    const order = [];
    if (st.group) {
      const groups = new Map();
      for (const job of jobs) {
        const k = groupKey(job);
        if (!groups.has(k)) groups.set(k, []);
        groups.get(k).push(job);
      }
      for (const [k, members] of groups) order.push(groupRow(k, members.length), ...members.map(rowFor));
    } else {
      order.push(...jobs.map(rowFor));
    }
    for (const el of [...tbody.children]) if (!order.includes(el)) el.remove();
    order.forEach((el, i) => {
      if (tbody.children[i] !== el) tbody.insertBefore(el, tbody.children[i] || null);
    });
  }

  async function refresh() {
    clearTimeout(timer);
    const mine = ++seq;
    try {
      const q = new URLSearchParams({ limit: String(LIMIT) });
      for (const k of ["status", "sort", "tag", "q"]) if (st[k]) q.set(k, st[k]);
      const body = await api(`/jobs?${q}`);
      if (stopped || mine !== seq) return;
      const jobs = listOf(body);
      note.textContent = "";
      const seen = new Set(jobs.map((j) => j.id));
      for (const [id, tr] of rows) if (!seen.has(id)) { tr.remove(); rows.delete(id); }
      layout(jobs);
      const filtered = st.status || st.tag || st.q;
      empty.textContent = jobs.length ? "" : filtered ? "No jobs match these filters." : "No jobs yet: design one under New job.";
      empty.hidden = jobs.length > 0;
      const more = body && body.next_cursor;
      count.textContent = `${jobs.length}${more ? "+" : ""} job${jobs.length === 1 && !more ? "" : "s"}${more ? ` (first ${jobs.length} shown)` : ""}`;
    } catch (e) {
      if (stopped || mine !== seq) return;
      // a 422 names the query parameter (query.sort: unknown path ...)
      note.textContent = `Could not load jobs: ${errorText(e)}`;
    }
    if (!stopped && mine === seq) timer = setTimeout(refresh, POLL_MS);
  }

  renderHead();
  syncCompare();
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
