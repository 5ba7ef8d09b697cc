// Searches: the list (#/searches) and one search (#/searches/{id}): status, budget and
// the best trial, the trials table (each linking to its job), a parallel-coordinates
// plot of the params against the metric, the best-so-far curve over trial numbers,
// the parameter importance bars and the confirm table (mean ± std over fresh seeds,
// and Welch's verdict on the winner against the runner-up), with Cancel. Both pages
// poll every 2 s until the search has finished.

import { api, listOf } from "./api.js";
import { Chart, PALETTE } from "./charts.js";
import { parallelPlot, choiceLabel } from "./parallel.js";
import { h, badge, num, age, errorText, toast } from "./util.js";

const POLL_MS = 2000;
/** A search's statuses it never leaves (api/routes/searches.py: search_status). */
export const SEARCH_DONE = new Set(["succeeded", "failed", "cancelled"]);

function countsText(c) {
  if (!c) return "–";
  return Object.entries(c).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`).join(" · ") || "–";
}

/** A metric value: accuracies in %, the rest as numbers. */
function metricText(metric, v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return "–";
  return metric.endsWith("acc") ? `${(v * 100).toFixed(2)} %` : num(v);
}

/** A param value for a table cell: numbers short, choices as their JSON. */
function paramText(v) {
  if (typeof v === "number") return num(v, 4);
  return choiceLabel(v);
}

function paramsText(params) {
  return Object.entries(params || {}).map(([k, v]) => `${k} = ${paramText(v)}`).join(", ");
}

const jobLink = (id, text = id) => h("a", { href: `#/jobs/${encodeURIComponent(id)}`, class: "mono" }, text);

// ---------------------------------------------------------------------- list

export function mountSearches(root) {
  let timer = null;
  let stopped = false;
  const note = h("div", { class: "formerror" });
  const tbody = h("tbody");
  const empty = h("div", { class: "empty" }, "Loading…");
  root.append(
    h("div", { class: "spread" }, h("h1", {}, "Searches"),
      h("span", { class: "muted small" }, "Launch one from the ", h("a", { href: "#/new" }, "designer"), " (Search…), with POST /searches or ",
        h("code", {}, "tricklab search FILE"), ".")),
    note,
    h("div", { class: "panel", style: "padding:0" },
      h("table", { id: "searches-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Algorithm"), h("th", {}, "Status"),
          h("th", {}, "Trials"), h("th", { class: "num" }, "Best"), h("th", { class: "num" }, "Age"))),
        tbody),
      empty),
  );

  async function refresh() {
    clearTimeout(timer);
    let open = false;
    try {
      const searches = listOf(await api("/searches?limit=100"));
      if (stopped) return;
      tbody.replaceChildren(...searches.map((s) => h("tr", { dataset: { id: s.id } },
        h("td", {}, h("a", { href: `#/searches/${encodeURIComponent(s.id)}`, class: "search-link" }, s.name || s.id), h("div", { class: "muted small mono" }, s.id)),
        h("td", {}, s.algorithm),
        h("td", {}, badge(s.status)),
        h("td", { class: "small" }, `${s.trials_planned} planned · `, countsText(s.counts)),
        h("td", { class: "num nowrap" }, s.best ? `${metricText(s.metric, s.best.metric)} (#${s.best.number})` : "–"),
        h("td", { class: "num muted" }, age(s.created_at)))));
      empty.hidden = searches.length > 0;
      empty.textContent = "No searches yet.";
      note.textContent = "";
      open = searches.some((s) => !SEARCH_DONE.has(s.status));
    } catch (e) {
      if (stopped) return;
      note.textContent = `Could not load searches: ${errorText(e)}`;
      open = true;
    }
    // a finished list only changes when someone starts a search: poll it slowly
    if (!stopped) timer = setTimeout(refresh, open ? POLL_MS : 5 * POLL_MS);
  }
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// ---------------------------------------------------------------- one search

/** [{x: trial numbers, y: each trial's metric}, {x, y: best so far}] over the scored trials. */
export function bestSoFar(trials, mode) {
  const scored = trials.filter((t) => typeof t.metric === "number" && Number.isFinite(t.metric)).sort((a, b) => a.number - b.number);
  const x = scored.map((t) => t.number);
  const y = scored.map((t) => t.metric);
  let best = null;
  const run = y.map((v) => (best = best === null ? v : mode === "min" ? Math.min(best, v) : Math.max(best, v)));
  return [{ x, y }, { x, y: run }];
}

export function mountSearch(root, params) {
  const id = params.id;
  const base = `/searches/${encodeURIComponent(id)}`;
  const abort = new AbortController();
  let stopped = false;
  let timer = null;
  let s = null;

  const head = h("div", { class: "spread" });
  const note = h("div", { class: "formerror" });
  const errorBox = h("div", { class: "errorbox", id: "search-error", hidden: true });
  const stats = h("div", { class: "panel", id: "search-status" });
  const trialsBox = h("div", { id: "search-trials", class: "scroll" });
  const plotBox = h("div", { id: "search-parallel" });
  const chartBox = h("div", { id: "search-best-chart" });
  const impBox = h("div", { id: "search-importance" });
  const confirmBox = h("div", { id: "search-confirm", class: "scroll" });
  const confirmPanel = h("div", { class: "panel" }, h("h3", {}, "Confirm: the best configurations re-run with fresh seeds"), confirmBox);
  root.append(
    head, note, errorBox, stats,
    h("div", { class: "panel" }, h("h3", {}, "Parameters against the metric"), plotBox,
      h("div", { class: "muted small" }, "One line per trial, darker = better; grey dashed: stopped early, failed or cancelled.")),
    h("div", { class: "search-grid" },
      h("div", { class: "panel" }, h("h3", {}, "Best so far, by trial"), chartBox),
      h("div", { class: "panel" }, h("h3", {}, "Parameter importance"), impBox)),
    confirmPanel,
    h("div", { class: "panel" }, h("h3", {}, "Trials"), trialsBox),
  );
  const chart = new Chart(chartBox, {
    title: "",
    xLabel: "trial",
    height: 240,
    series: [
      { label: "each trial", color: PALETTE[8], width: 1, points: true },
      { label: "best so far", color: PALETTE[0], width: 2 },
    ],
  });
  // the best so far holds until a better trial: draw it as steps (uPlot's path builder)
  if (window.uPlot && uPlot.paths && uPlot.paths.stepped) chart.plot.series[2].paths = uPlot.paths.stepped({ align: 1 });

  function renderHead() {
    const actions = [];
    if (!SEARCH_DONE.has(s.status) && !s.cancelled) {
      actions.push(h("button", { type: "button", class: "danger", id: "cancel-search", onclick: cancel }, "Cancel search"));
    }
    const ids = s.trials.filter((t) => t.job_id && t.state !== "pending").map((t) => t.job_id).slice(0, 20);
    if (ids.length) actions.push(h("a", { class: "button", href: `#/compare?ids=${ids.map(encodeURIComponent).join(",")}&metric=${s.metric === "best_val_acc" ? "val_acc" : s.metric}&x=epoch` }, "Compare trials"));
    head.replaceChildren(
      h("div", {},
        h("div", { class: "row" }, h("h1", { id: "search-name" }, s.name || s.id), badge(s.status),
          h("span", { class: "muted" }, `${s.algorithm} · ${s.mode} ${s.metric}`)),
        h("div", { class: "muted small mono" }, s.id, " · created ", age(s.created_at))),
      h("div", { class: "row" }, ...actions),
    );
    errorBox.hidden = !s.error;
    errorBox.replaceChildren(...(s.error ? [h("strong", {}, "Search failed: "), typeof s.error === "string" ? s.error : JSON.stringify(s.error)] : []));
    const b = s.budget || {};
    const stat = (label, value, extra = {}) => h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "value", ...extra }, value));
    const best = s.best;
    stats.replaceChildren(
      h("div", { class: "stats" },
        stat("trials", `${s.trials.filter((t) => t.state !== "rejected").length} / ${s.trials_planned}`),
        stat("phase", s.phase || "–"),
        stat(`best ${s.metric}`, best ? metricText(s.metric, best.metric) : "–", { id: "search-best" }),
        stat("epochs spent", b.epochs_full ? `${b.epochs_spent} / ${b.epochs_full}` : String(b.epochs_spent ?? "–"), { title: "trials' epochs against a full run of every planned trial" }),
        stat("confirm epochs", b.confirm_epochs ?? "–"),
        stat("max concurrent", s.max_concurrent ?? "–")),
      h("div", { class: "small", style: "margin-top:10px" }, h("span", { class: "muted" }, "States: "), countsText(s.counts)),
      best ? h("div", { class: "small", style: "margin-top:4px" }, h("span", { class: "muted" }, "Best: "), `trial ${best.number} `,
        best.job_id ? jobLink(best.job_id) : "", h("span", { class: "mono" }, ` ${paramsText(best.params)}`)) : "",
    );
  }

  function renderTrials() {
    const paths = Object.keys(s.space || {});
    trialsBox.replaceChildren(h("table", { id: "search-trials-table", class: "trials" },
      h("thead", {}, h("tr", {}, h("th", { class: "num" }, "#"), h("th", {}, "State"),
        ...paths.map((p) => h("th", { class: "mono" }, p)),
        h("th", { class: "num" }, s.metric), h("th", { class: "num" }, "epochs"), h("th", {}, "Job"))),
      h("tbody", {}, s.trials.map((t) => h("tr", { dataset: { trial: t.number, state: t.state }, class: best(t) ? "best" : "" },
        h("td", { class: "num" }, t.number),
        h("td", {}, badge(t.state), t.rejected ? h("div", { class: "muted small" }, typeof t.rejected === "string" ? t.rejected : JSON.stringify(t.rejected)) : ""),
        ...paths.map((p) => h("td", { class: "num mono" }, t.params && p in t.params ? paramText(t.params[p]) : "–")),
        h("td", { class: "num" }, metricText(s.metric, t.metric)),
        h("td", { class: "num" }, t.epochs_spent ?? "–"),
        h("td", {}, t.job_id && t.state !== "pending" && t.state !== "rejected" ? jobLink(t.job_id) : h("span", { class: "muted" }, "–")))))));
  }
  const best = (t) => s.best && s.best.number === t.number;

  function renderPlot() {
    const live = s.trials.filter((t) => t.state !== "rejected" && t.state !== "pending");
    plotBox.replaceChildren(
      live.length
        ? parallelPlot({ trials: live, space: s.space || {}, metric: s.metric, mode: s.mode, width: Math.max(600, plotBox.clientWidth || 900) })
        : h("div", { class: "empty" }, "No trials yet."),
    );
    const data = bestSoFar(s.trials, s.mode);
    chart.set(data);
  }

  function renderImportance() {
    const imp = Object.entries(s.importance || {}).filter(([, v]) => typeof v === "number").sort((a, b) => b[1] - a[1]);
    if (!imp.length) {
      impBox.replaceChildren(h("div", { class: "muted small" }, "Not computed yet: Optuna's importance needs finished trials that differ in more than one value."));
      return;
    }
    const top = imp[0][1] || 1;
    impBox.replaceChildren(...imp.map(([path, w]) => h("div", { class: "imp-row", dataset: { path } },
      h("span", { class: "imp-name mono small", title: path }, path),
      h("span", { class: "imp-track" }, h("span", { class: "imp-bar", style: `width:${Math.max(1, (w / top) * 100).toFixed(1)}%` })),
      h("span", { class: "imp-value num small" }, `${(w * 100).toFixed(1)} %`))),
    h("div", { class: "muted small" }, "Share of the metric's variance each parameter explains (Optuna's fANOVA over the finished trials)."));
  }

  function renderConfirm() {
    const c = s.confirm;
    confirmPanel.hidden = !c;
    if (!c) return;
    const pm = (r) => (typeof r.mean !== "number" ? "–" : metricText(s.metric, r.mean).replace(" %", "") +
      (typeof r.std === "number" ? ` ± ${s.metric.endsWith("acc") ? (r.std * 100).toFixed(2) : num(r.std)}` : "") + (s.metric.endsWith("acc") ? " %" : ""));
    const w = c.winner;
    confirmBox.replaceChildren(
      h("table", { id: "search-confirm-table" },
        h("thead", {}, h("tr", {}, h("th", { class: "num" }, "Rank"), h("th", { class: "num" }, "Trial"), h("th", {}, "Params"),
          h("th", { class: "num" }, `${s.metric} in the search`), h("th", { class: "num" }, `${s.metric} mean ± std`), h("th", { class: "num" }, "n"),
          h("th", {}, "Seeds"))),
        h("tbody", {}, (c.rows || []).map((r) => h("tr", { dataset: { rank: r.rank }, class: w && w.winner_rank === r.rank ? "best" : "" },
          h("td", { class: "num", title: `rank ${r.rank} (0-based) in the API` }, r.rank + 1),
          h("td", { class: "num" }, r.trial),
          h("td", { class: "mono small" }, paramsText(r.params)),
          h("td", { class: "num nowrap" }, metricText(s.metric, r.search_value)),
          h("td", { class: "num nowrap pm" }, pm(r)),
          h("td", { class: "num" }, `${r.n}/${c.seeds}`),
          h("td", { class: "small" }, (r.jobs || []).map((j) => h("span", { class: "nowrap seed-job" },
            j.status === "pending" ? h("span", { class: "muted" }, `s${j.seed} pending`) : jobLink(j.job_id, `s${j.seed}`), " ", badge(j.status), " "))))))),
      h("div", { id: "search-verdict", style: "margin-top:10px" },
        w ? [h("span", { class: `sig ${w.beats_runner_up === "yes" ? "yes" : "no"}` }, w.beats_runner_up === "yes" ? "beyond seed noise" : "within seed noise"), " ", w.sentence]
          : h("span", { class: "muted small" }, (c.rows || []).length ? "Welch's test needs two configurations with finished seeds." : "The confirm stage starts once every trial has finished.")),
      h("div", { class: "muted small" }, `Top ${c.top_k} configurations × ${c.seeds} seeds, none of them the seed the search picked them on (that value is biased up by the selection). ± is the sample std over seeds.`),
    );
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      s = await api(base, { signal: abort.signal });
      if (stopped) return;
      renderHead();
      renderPlot();
      renderImportance();
      renderConfirm();
      renderTrials();
      note.textContent = "";
    } catch (e) {
      if (stopped || e.name === "AbortError") return;
      note.textContent = e.status === 404 ? `No search ${id}.` : `Could not load the search: ${errorText(e)}`;
      if (e.status === 404) return;
    }
    if (!stopped && !(s && SEARCH_DONE.has(s.status))) timer = setTimeout(refresh, POLL_MS);
  }

  async function cancel() {
    if (!confirm("Cancel this search? No new trial starts; queued trials end at once, running ones at their next log point.")) return;
    try {
      await api(`${base}/cancel`, { method: "POST" });
      toast("Search cancel requested");
    } catch (e) {
      toast(`Cancel failed: ${e.message}`, 5000);
    }
    refresh();
  }

  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
    abort.abort();
    chart.destroy();
  };
}
