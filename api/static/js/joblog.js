// A job's own log lines (GET /jobs/{id}/logs): paged with `since` (the `next` cursor
// of the previous answer), polled by the job page while the job runs, with level
// colours, the attempt that wrote each line and a "follow" toggle that keeps the
// newest line in view. The DOM keeps the last MAX_LINES lines.

import { api } from "./api.js";
import { h, errorText } from "./util.js";

export const MAX_LINES = 1000;
const PAGE = 1000; // lines per request; a full page means more are waiting
const MAX_PAGES = 6; // per poll: the API keeps 5,000 lines per job

/** `base` is "/jobs/{id}". Returns {el, poll(), lines()}; poll() resolves when it is done. */
export function logPanel(base, signal) {
  let cursor = null;
  let dropped = 0;
  let busy = false;
  const box = h("div", { class: "joblog", id: "job-log", role: "log", "aria-live": "off", tabindex: "0" });
  const follow = h("input", { type: "checkbox", id: "log-follow", checked: true });
  const count = h("span", { class: "muted small", id: "log-count" }, "no lines yet");
  const err = h("div", { class: "formerror small", id: "log-error" });
  const el = h("div", { class: "panel", id: "job-log-panel" },
    h("div", { class: "spread", style: "margin-bottom:6px" },
      h("h3", { style: "margin:0" }, "Log"),
      h("div", { class: "row" }, count,
        h("label", { class: "small", for: "log-follow", title: "Keep the newest line in view" }, follow, " follow"))),
    box, err);

  // scrolling up to read stops following; scrolling back to the end follows again
  box.addEventListener("scroll", () => {
    follow.checked = box.scrollHeight - box.scrollTop - box.clientHeight < 8;
  });
  follow.addEventListener("change", () => {
    if (follow.checked) box.scrollTop = box.scrollHeight;
  });

  function time(ts) {
    if (!ts) return "";
    const d = new Date(ts);
    return Number.isNaN(d.getTime()) ? ts : d.toLocaleTimeString([], { hour12: false });
  }

  function line(l) {
    const level = (l.level || "INFO").toLowerCase();
    return h("div", { class: `log-line level-${level}`, dataset: { id: l.id, level: l.level || "" }, title: `${l.ts || ""} ${l.logger || ""}` },
      h("span", { class: "log-ts" }, time(l.ts)),
      h("span", { class: "log-level" }, (l.level || "").padEnd(7)),
      l.attempt ? h("span", { class: "log-attempt", title: `attempt ${l.attempt}` }, `#${l.attempt}`) : h("span", { class: "log-attempt" }),
      h("span", { class: "log-msg" }, l.msg));
  }

  function append(lines) {
    if (!lines.length) return;
    const atEnd = follow.checked;
    const frag = document.createDocumentFragment();
    for (const l of lines.slice(-MAX_LINES)) frag.append(line(l));
    dropped += Math.max(0, lines.length - MAX_LINES);
    box.append(frag);
    while (box.childElementCount > MAX_LINES) {
      box.firstElementChild.remove();
      dropped++;
    }
    const n = box.childElementCount;
    count.textContent = `${n.toLocaleString()} line${n === 1 ? "" : "s"}` + (dropped ? ` (the ${dropped.toLocaleString()} before not shown)` : "");
    if (atEnd) box.scrollTop = box.scrollHeight;
  }

  async function poll() {
    if (busy) return; // a slow answer: the next tick asks again
    busy = true;
    try {
      for (let page = 0; page < MAX_PAGES; page++) {
        const q = new URLSearchParams({ limit: String(PAGE) });
        if (cursor) q.set("since", cursor);
        const body = await api(`${base}/logs?${q}`, { signal });
        const lines = (body && body.lines) || [];
        append(lines);
        if (body && body.next) cursor = body.next;
        if (lines.length < PAGE) break;
      }
      err.textContent = "";
    } catch (e) {
      if (e.name !== "AbortError") err.textContent = `Could not read the log: ${errorText(e)}`;
    } finally {
      busy = false;
    }
  }

  return { el, poll, lines: () => box.childElementCount };
}
