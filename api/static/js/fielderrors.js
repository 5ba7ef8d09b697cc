// A 422's details shown beside the fields their `loc` names (the longest prefix of
// the loc that a visible field's spec path matches); the rest come back as text.

import { errorText } from "./util.js";

/** wrappers(): every .field element that may take an error (data-path = its spec path). */
export function fieldErrors(wrappers) {
  /** Clear the marks one source (preview, submit) left, or all of them. */
  function clear(source) {
    for (const w of wrappers()) {
      if (source && w.dataset.errSource !== source) continue;
      w.classList.remove("invalid");
      w.querySelector(".err").textContent = "";
      delete w.dataset.errSource;
    }
  }

  function fieldFor(path) {
    for (let n = path.length; n > 0; n--) {
      const p = path.slice(0, n).join(".");
      for (const w of wrappers()) if (w.dataset.path === p && !w.hidden) return w;
    }
    return null;
  }

  /** Mark the fields err's details name; returns the text for what no field took. */
  function show(err, source, mapLoc = (l) => l) {
    const loose = [];
    for (const d of err.details || []) {
      const loc = mapLoc((d.loc || []).filter((p) => p !== "body"));
      const w = fieldFor(loc.map(String));
      if (w) {
        w.classList.add("invalid");
        w.dataset.errSource = source;
        const e = w.querySelector(".err");
        e.textContent = e.textContent ? `${e.textContent}; ${d.msg}` : d.msg;
      } else {
        loose.push(`${loc.join(".") || "spec"}: ${d.msg}`);
      }
    }
    return (err.details || []).length ? loose.join("\n") : errorText(err);
  }

  /** The first marked field, to scroll to. */
  const first = () => [...wrappers()].find((w) => w.classList.contains("invalid")) || null;

  return { clear, show, first };
}
