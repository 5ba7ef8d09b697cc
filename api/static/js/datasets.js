// Datasets: the list (#/datasets: built-ins and uploads) and one dataset (#/datasets/{id}):
// shape, dtype, stored bytes, the classes with their counts as bars, and for image data a
// grid of a few samples (GET /datasets/{id}/samples.png, fetched with the API key and
// shown through a blob URL, since an <img src> cannot send the Authorization header).

import { api, listOf, getKey } from "./api.js";
import { h, age, errorText } from "./util.js";

const SAMPLES = 16;

export function bytesText(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

function shapeText(ds) {
  return `(${["N", ...(ds.input_shape || [])].join(" × ")})`;
}

function splitText(ds) {
  const own = ds.own_val === true ? "own split" : ds.builtin || ds.own_val === false ? "default val_fraction" : "";
  return `${ds.n_train} / ${ds.n_val}${own ? ` (${own})` : ""}`;
}

// ---------------------------------------------------------------------- list

export function mountDatasets(root) {
  let stopped = false;
  const note = h("div", { class: "formerror" });
  const tbody = h("tbody");
  const empty = h("div", { class: "empty" }, "Loading…");
  root.append(
    h("div", { class: "spread" }, h("h1", {}, "Datasets"),
      h("span", { class: "muted small" }, "Upload with ", h("code", {}, "tricklab upload FILE"), " or POST /datasets.")),
    note,
    h("div", { class: "panel", style: "padding:0" },
      h("table", { id: "datasets-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Kind"), h("th", {}, "Shape"), h("th", {}, "dtype"),
          h("th", { class: "num" }, "Classes"), h("th", {}, "Train / val"), h("th", { class: "num" }, "Stored"), h("th", { class: "num" }, "Age"))),
        tbody),
      empty),
  );
  api("/datasets")
    .then((body) => {
      if (stopped) return;
      const rows = listOf(body);
      tbody.replaceChildren(...rows.map((d) => h("tr", { dataset: { id: d.id } },
        h("td", {}, h("a", { href: `#/datasets/${encodeURIComponent(d.id)}`, class: "dataset-link" }, d.name || d.id), h("div", { class: "muted small mono" }, d.id)),
        h("td", {}, d.builtin ? `${d.kind} · built-in` : d.kind),
        h("td", { class: "mono small" }, shapeText(d)),
        h("td", { class: "mono small" }, d.dtype || "float32"),
        h("td", { class: "num" }, d.num_classes),
        h("td", { class: "small" }, splitText(d)),
        h("td", { class: "num" }, d.builtin ? "–" : bytesText(d.stored_bytes || d.bytes)),
        h("td", { class: "num muted" }, d.created_at ? age(d.created_at) : "–"))));
      empty.textContent = rows.length ? "" : "No datasets.";
      empty.hidden = rows.length > 0;
    })
    .catch((e) => {
      if (!stopped) note.textContent = errorText(e);
    });
  return () => {
    stopped = true;
  };
}

// ------------------------------------------------------------------ one dataset

function classBars(ds) {
  const counts = ds.class_counts || [];
  if (!counts.length) return h("p", { class: "muted small" }, "Class counts are not recorded for this dataset.");
  const most = Math.max(...counts, 1);
  const names = ds.classes || [];
  return h("table", { id: "class-counts", class: "small" },
    h("thead", {}, h("tr", {}, h("th", {}, "Class"), h("th", {}, "Samples"), h("th", { class: "num" }, ""))),
    h("tbody", {}, ...counts.map((n, i) => h("tr", {},
      h("td", {}, names[i] !== undefined ? `${i} · ${names[i]}` : String(i)),
      h("td", {}, h("span", { class: "bar" }, h("span", { style: `width:${((100 * n) / most).toFixed(1)}%` }))),
      h("td", { class: "num" }, n)))));
}

async function sampleImage(id, img, note) {
  const key = getKey();
  const res = await fetch(`/datasets/${encodeURIComponent(id)}/samples.png?n=${SAMPLES}`, {
    headers: key ? { Authorization: `Bearer ${key}` } : {},
  });
  if (!res.ok) {
    note.textContent = `No samples (${res.status}).`;
    return null;
  }
  const url = URL.createObjectURL(await res.blob());
  img.src = url;
  img.hidden = false;
  return url;
}

export function mountDataset(root, params) {
  const id = params.id;
  let url = null;
  let stopped = false;
  const note = h("div", { class: "formerror" });
  const body = h("div", {}, h("div", { class: "empty" }, "Loading…"));
  root.append(h("p", { class: "small" }, h("a", { href: "#/datasets" }, "← Datasets")), note, body);
  api(`/datasets/${encodeURIComponent(id)}`)
    .then((ds) => {
      if (stopped) return;
      const facts = [
        ["Kind", ds.builtin ? `${ds.kind} (built-in)` : ds.kind],
        ["Shape", shapeText(ds)],
        ["dtype", ds.dtype || "float32"],
        ["Classes", ds.num_classes],
        ["Train / val", splitText(ds)],
        ["Stored", ds.builtin ? "–" : bytesText(ds.stored_bytes || ds.bytes)],
        ["File", ds.filename || "–"],
      ];
      const img = h("img", { id: "dataset-samples", alt: `samples of ${ds.name || id}`, hidden: true, style: "image-rendering:pixelated;max-width:100%" });
      const sampleNote = h("p", { class: "muted small" });
      body.replaceChildren(
        h("h1", {}, ds.name || id, " ", h("span", { class: "muted small mono" }, id)),
        h("div", { class: "panel" }, h("table", { id: "dataset-facts", class: "small" },
          h("tbody", {}, ...facts.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { class: "mono" }, String(v))))))),
        h("div", { class: "panel" }, h("h2", {}, "Classes"), classBars(ds)),
        ds.kind === "image" && !ds.builtin ? h("div", { class: "panel" }, h("h2", {}, "Samples"), img, sampleNote) : h("span"),
      );
      if (ds.kind === "image" && !ds.builtin) {
        sampleImage(id, img, sampleNote).then((u) => {
          if (stopped && u) URL.revokeObjectURL(u);
          else url = u;
        }).catch((e) => { sampleNote.textContent = errorText(e); });
      }
    })
    .catch((e) => {
      if (stopped) return;
      body.replaceChildren();
      if (e.status === 404) body.append(h("p", { class: "empty" }, `No dataset ${id}. `, h("a", { href: "#/datasets" }, "Back to datasets")));
      else note.textContent = errorText(e);
    });
  return () => {
    stopped = true;
    if (url) URL.revokeObjectURL(url);
  };
}
