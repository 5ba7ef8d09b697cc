// Hash router: #/ (jobs), #/jobs/{id}, #/new, #/compare?ids=a,b, #/sweeps,
// #/sweeps/new (sweepform.js), #/sweeps/{id}, #/searches, #/searches/{id}, #/datasets, #/datasets/{id}. Each view is mount(root, params) →
// cleanup(); cleanup stops its timers and streams. A job page picks its view from the job's task (training
// curves, or the lr range test's loss vs lr). The first view mounts once the
// API's vocabulary (GET /openapi.json: job statuses, the spec's fields) is in.

import { api, askKey } from "./api.js";
import { mountJobs } from "./jobs.js";
import { mountJob } from "./job.js";
import { mountDesigner } from "./designer.js";
import { mountCompare } from "./compare.js";
import { mountSweeps, mountSweep } from "./sweeps.js";
import { mountSweepForm } from "./sweepform.js";
import { mountSearches, mountSearch } from "./searches.js";
import { mountRangeTest } from "./rangetest.js";
import { mountDatasets, mountDataset } from "./datasets.js";
import { h, errorText } from "./util.js";
import { loadVocab } from "./vocab.js";

const root = document.getElementById("view");
let cleanup = null;

function parse() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?");
  const params = Object.fromEntries(new URLSearchParams(query));
  let m;
  if (path === "/" || path === "/jobs") return { name: "jobs", mount: mountJobs, params };
  if ((m = path.match(/^\/jobs\/([^/]+)$/))) return { name: "jobs", mount: mountJobPage, params: { ...params, id: decodeURIComponent(m[1]) } };
  if (path === "/sweeps") return { name: "sweeps", mount: mountSweeps, params };
  if (path === "/sweeps/new") return { name: "sweeps", mount: mountSweepForm, params };
  if ((m = path.match(/^\/sweeps\/([^/]+)$/))) return { name: "sweeps", mount: mountSweep, params: { ...params, id: decodeURIComponent(m[1]) } };
  if (path === "/searches") return { name: "searches", mount: mountSearches, params };
  if ((m = path.match(/^\/searches\/([^/]+)$/))) return { name: "searches", mount: mountSearch, params: { ...params, id: decodeURIComponent(m[1]) } };
  if (path === "/datasets") return { name: "datasets", mount: mountDatasets, params };
  if ((m = path.match(/^\/datasets\/([^/]+)$/))) return { name: "datasets", mount: mountDataset, params: { ...params, id: decodeURIComponent(m[1]) } };
  if (path === "/new") return { name: "new", mount: mountDesigner, params };
  if (path === "/compare") return { name: "compare", mount: mountCompare, params };
  return { name: "", mount: (el) => el.append(h("p", { class: "empty" }, `No page at ${raw}. `, h("a", { href: "#/" }, "Back to jobs"))), params };
}

/** A job page: one GET to learn the task, then the view for it. */
function mountJobPage(el, params) {
  let inner = null;
  let gone = false;
  api(`/jobs/${encodeURIComponent(params.id)}`)
    .then((job) => {
      if (gone) return;
      const task = (job.spec && job.spec.task) || "train";
      inner = (task === "lr_range_test" ? mountRangeTest : mountJob)(el, params) || null;
    })
    .catch((e) => {
      if (gone) return;
      if (e.status === 404) el.append(h("p", { class: "empty" }, `No job ${params.id}. `, h("a", { href: "#/" }, "Back to jobs")));
      else inner = mountJob(el, params) || null; // it shows the error and keeps retrying
      if (e.status !== 404 && !inner) el.append(h("div", { class: "formerror" }, errorText(e)));
    });
  return () => {
    gone = true;
    if (inner) inner();
  };
}

function route() {
  if (cleanup) {
    try {
      cleanup();
    } catch (e) {
      console.error(e);
    }
  }
  cleanup = null;
  root.replaceChildren();
  const r = parse();
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === r.name);
  cleanup = r.mount(root, r.params) || null;
  window.scrollTo(0, 0);
}

/** Load the vocabulary, then route; a failed load says so with a way to try again. */
async function start() {
  try {
    await loadVocab();
  } catch (e) {
    root.replaceChildren(
      h("div", { class: "formerror", id: "vocab-error" }, `Could not load the API's schema (GET /openapi.json): ${errorText(e)}`),
      h("button", { type: "button", onclick: start }, "Try again"),
    );
    return;
  }
  window.addEventListener("hashchange", route);
  route();
}

document.getElementById("api-key-button").addEventListener("click", () => askKey());
start();
