// The job page's timeline: how long it queued, when it started and finished (or how
// long it has been running, ticking every second), and its attempts as a bar and a
// list — claimed when, by which worker, resumed from which step, ended how
// (GET /jobs/{id}?include=attempts: `attempt_history`, rebuilt from the job's events).

import { h, duration, toDate } from "./util.js";
import { TERMINAL } from "./vocab.js";

const clock = (t) => {
  const d = toDate(t);
  return d ? d.toLocaleTimeString([], { hour12: false }) : "–";
};
const secs = (a, b) => {
  const t0 = toDate(a);
  const t1 = b === null ? new Date() : toDate(b);
  return t0 && t1 ? (t1.getTime() - t0.getTime()) / 1000 : null;
};
/** Seconds for people: tenths below 10 s (a small job runs in under one), else util.duration. */
const dur = (s) => (typeof s === "number" && s < 10 ? `${Math.max(0, s).toFixed(1)}s` : duration(s));
const ENDED = { preempted: "preempted, re-queued", "worker lost": "its worker was lost, re-queued", "lease expired": "its lease expired, re-queued" };

export function timelinePanel() {
  let job = null;
  let history = null; // attempt_history, or null before it is read
  const line = h("div", { class: "duration", id: "job-duration" });
  const bar = h("div", { class: "attempt-bar", id: "attempt-bar", "aria-hidden": "true" });
  const list = h("ol", { class: "attempts", id: "job-attempts" });
  const el = h("div", { class: "panel", id: "job-timeline" }, h("h3", {}, "Timeline"), line, bar, list);
  const ticker = setInterval(() => {
    if (job && !TERMINAL.has(job.status)) render();
  }, 1000);

  function durationLine() {
    const parts = [];
    const queued = secs(job.created_at, job.started_at || (TERMINAL.has(job.status) ? job.finished_at : null));
    const running = job.status === "running";
    if (!job.started_at) {
      parts.push(h("span", { id: "dur-queued" }, TERMINAL.has(job.status) ? `never started (queued ${dur(queued)})` : `queued for ${dur(queued)}`));
    } else {
      parts.push(h("span", { id: "dur-queued" }, `queued ${dur(queued)}`), " → ",
        h("span", { id: "dur-started", title: job.started_at }, `started ${clock(job.started_at)}`), " → ");
      if (job.finished_at) {
        parts.push(h("span", { id: "dur-finished", title: job.finished_at }, `${job.status} ${clock(job.finished_at)}`), " · ",
          h("strong", { id: "dur-total" }, `ran ${dur(secs(job.started_at, job.finished_at))}`));
      } else {
        const what = running ? "running for" : "re-queued; started";
        parts.push(h("strong", { id: "dur-total" }, `${what} ${dur(secs(job.started_at, null))}${running ? "" : " ago"}`));
      }
    }
    return parts;
  }

  function drawBar() {
    const t0 = toDate(job.created_at);
    const t1 = job.finished_at ? toDate(job.finished_at) : new Date();
    if (!t0 || !t1 || !history) return [];
    const span = Math.max(1, t1 - t0);
    const at = (t) => Math.min(100, Math.max(0, ((toDate(t) || t1) - t0) / span * 100));
    return history.filter((a) => a.claimed_at).map((a) => {
      const left = at(a.claimed_at);
      const right = a.ended_at ? at(a.ended_at) : 100;
      const state = a.ended ? a.ended.replace(/\s+/g, "-") : "running";
      return h("span", { class: `seg ${state}`, style: `left:${left.toFixed(2)}%;width:${Math.max(0.6, right - left).toFixed(2)}%`, title: `attempt ${a.attempt}: ${a.ended || "running"}` });
    });
  }

  function item(a) {
    if (!a.claimed_at) {
      return h("li", { dataset: { attempt: a.attempt } }, h("strong", {}, `Attempt ${a.attempt}`), h("span", { class: "muted" }, " · its events are no longer kept (the event stream is capped)"));
    }
    const from = a.resumed_from_step;
    const end = a.ended
      ? `${ENDED[a.ended] || a.ended} ${clock(a.ended_at)} after ${dur(secs(a.claimed_at, a.ended_at))}`
      : `running for ${dur(secs(a.claimed_at, null))}`;
    return h("li", { dataset: { attempt: a.attempt, ended: a.ended || "running" } },
      h("strong", {}, `Attempt ${a.attempt}`),
      ` · claimed ${clock(a.claimed_at)} by `, h("span", { class: "mono" }, a.worker || "?"),
      a.device ? ` on ${a.device}` : "",
      " · ", h("span", { class: "attempt-from" }, typeof from === "number" ? `resumed from step ${from}` : a.device ? "started at step 0" : "starting"),
      " · ", h("span", { class: "attempt-end" }, end));
  }

  function render() {
    line.replaceChildren(...durationLine());
    bar.replaceChildren(...drawBar());
    bar.hidden = !bar.childElementCount;
    list.replaceChildren(...(history || []).map(item));
    list.hidden = !list.childElementCount;
  }

  return {
    el,
    /** job: GET /jobs/{id}; attempts: its attempt_history when read (else keep the last). */
    update(j, attempts) {
      job = j;
      if (attempts) history = attempts;
      render();
    },
    destroy: () => clearInterval(ticker),
  };
}
