// Hash router: #/ (jobs), #/jobs/{id}, #/new, #/compare?ids=a,b. Each view is
// mount(root, params) → cleanup(); cleanup stops its timers and streams.

import { askKey } from "./api.js";
import { mountJobs } from "./jobs.js";
import { mountJob } from "./job.js";
import { mountDesigner } from "./designer.js";
import { mountCompare } from "./compare.js";
import { h } from "./util.js";

const root = document.getElementById("view");
let cleanup = null;

function parse() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?");
  const params = Object.fromEntries(new URLSearchParams(query));
  let m;
  if (path === "/" || path === "/jobs") return { name: "jobs", mount: mountJobs, params };
  if ((m = path.match(/^\/jobs\/([^/]+)$/))) return { name: "jobs", mount: mountJob, params: { ...params, id: decodeURIComponent(m[1]) } };
  if (path === "/new") return { name: "new", mount: mountDesigner, params };
  if (path === "/compare") return { name: "compare", mount: mountCompare, params };
  return { name: "", mount: (el) => el.append(h("p", { class: "empty" }, `No page at ${raw}. `, h("a", { href: "#/" }, "Back to jobs"))), params };
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

window.addEventListener("hashchange", route);
document.getElementById("api-key-button").addEventListener("click", () => askKey());
route();
