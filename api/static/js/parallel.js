// A parallel-coordinates plot (SVG) of a search's trials: one vertical axis per
// dimension of the space (log scale for loguniform, evenly spaced labels for a
// choice, linear otherwise), the metric's axis last, one polyline per trial. A
// finished trial's line is coloured by its metric (light = worst, dark = best);
// a trial that did not finish (stopped early, failed, cancelled) is grey and dashed
// and ends at the last parameter axis when it has no metric.

const NS = "http://www.w3.org/2000/svg";
const PAD = { top: 34, bottom: 26, left: 60, right: 70 };

function el(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A choice's label as the API keys it (tricklab.search_spec.label: JSON, sorted keys). */
export function choiceLabel(v) {
  if (v === null || typeof v !== "object") return JSON.stringify(v ?? null);
  if (Array.isArray(v)) return `[${v.map(choiceLabel).join(",")}]`;
  return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${choiceLabel(v[k])}`).join(",")}}`;
}

function tick(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1);
  return String(Number(v.toPrecision(3)));
}

/** Axis of one dimension: pos(value) in [0, 1] (0 = bottom) or null, and its tick labels. */
function axisOf(dist) {
  if (dist.choice) {
    const labels = dist.choice.map(choiceLabel);
    const n = labels.length;
    const at = (i) => (n === 1 ? 0.5 : i / (n - 1));
    return {
      kind: "choice",
      pos: (v) => {
        const i = labels.indexOf(choiceLabel(v));
        return i < 0 ? null : at(i);
      },
      ticks: labels.map((l, i) => [at(i), l.length > 14 ? `${l.slice(0, 13)}…` : l]),
    };
  }
  const [lo, hi] = dist.loguniform || dist.uniform || dist.int;
  if (dist.loguniform) {
    const a = Math.log10(lo);
    const b = Math.log10(hi);
    const pos = (v) => (typeof v === "number" && v > 0 ? (Math.log10(v) - a) / (b - a) : null);
    const ticks = [[0, tick(lo)], [1, tick(hi)]];
    for (let e = Math.ceil(a); e <= Math.floor(b); e++) {
      const p = (e - a) / (b - a);
      if (p > 0.06 && p < 0.94) ticks.push([p, tick(10 ** e)]);
    }
    return { kind: "log", pos, ticks };
  }
  const span = hi - lo || 1;
  const pos = (v) => (typeof v === "number" ? (hi === lo ? 0.5 : (v - lo) / span) : null);
  const ticks = hi === lo ? [[0.5, tick(lo)]] : [[0, tick(lo)], [0.5, tick(lo + span / 2)], [1, tick(hi)]];
  if (dist.int && hi > lo && hi - lo <= 6) {
    return { kind: "int", pos, ticks: Array.from({ length: hi - lo + 1 }, (_, i) => [i / (hi - lo), String(lo + i)]) };
  }
  return { kind: dist.int ? "int" : "linear", pos, ticks };
}

/** Light blue (worst) → dark blue (best), t in [0, 1]. */
function colour(t) {
  const a = [191, 219, 254];
  const b = [29, 78, 216];
  const c = a.map((x, i) => Math.round(x + (b[i] - x) * t));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/**
 * The plot as an <svg>: trials [{number, params, state, metric}], space {path: dist},
 * metric name and mode ("max" | "min"). Lines carry data-trial and data-finished.
 */
export function parallelPlot({ trials, space, metric, mode, width = 900, height = 320 }) {
  const paths = Object.keys(space);
  const axes = paths.map((p) => ({ name: p, ...axisOf(space[p]) }));
  const scored = trials.filter((t) => typeof t.metric === "number" && Number.isFinite(t.metric));
  const ms = scored.map((t) => t.metric);
  let mlo = ms.length ? Math.min(...ms) : 0;
  let mhi = ms.length ? Math.max(...ms) : 1;
  if (mhi === mlo) { mlo -= 0.5 * (Math.abs(mlo) || 1) * 0.01; mhi += 0.5 * (Math.abs(mhi) || 1) * 0.01; }
  const mpos = (v) => (typeof v === "number" && Number.isFinite(v) ? (v - mlo) / (mhi - mlo) : null);
  axes.push({ name: `${metric} (${mode})`, kind: "metric", pos: mpos, ticks: [[0, tick(mlo)], [0.5, tick((mlo + mhi) / 2)], [1, tick(mhi)]] });

  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "parallel", role: "img", "aria-label": `parameters against ${metric}` });
  const plotH = height - PAD.top - PAD.bottom;
  const step = axes.length > 1 ? (width - PAD.left - PAD.right) / (axes.length - 1) : 0;
  const x = (i) => PAD.left + i * step;
  const y = (p) => PAD.top + (1 - p) * plotH;

  // lines first, so the axes draw over them; the finished ones over the greyed ones, best on top
  const good = (t) => (mode === "min" ? 1 - mpos(t.metric) : mpos(t.metric));
  const order = [...trials].sort((a, b) => {
    const fa = a.state === "succeeded" && a.metric !== null ? 1 : 0;
    const fb = b.state === "succeeded" && b.metric !== null ? 1 : 0;
    return fa - fb || (fa ? good(a) - good(b) : 0);
  });
  const lines = el("g", { class: "lines" });
  for (const t of order) {
    const finished = t.state === "succeeded" && typeof t.metric === "number";
    const pts = [];
    axes.forEach((a, i) => {
      const p = a.kind === "metric" ? mpos(t.metric) : a.pos((t.params || {})[a.name]);
      if (p !== null && Number.isFinite(p)) pts.push(`${x(i).toFixed(1)},${y(Math.max(0, Math.min(1, p))).toFixed(1)}`);
    });
    if (pts.length < 2) continue;
    const line = el("polyline", {
      points: pts.join(" "),
      fill: "none",
      stroke: finished ? colour(good(t)) : "#9ca3af",
      "stroke-width": finished ? 2 : 1.2,
      "stroke-opacity": finished ? 0.9 : 0.6,
      "data-trial": t.number,
      "data-finished": finished ? "1" : "0",
    });
    if (!finished) line.setAttribute("stroke-dasharray", "4 3");
    line.append(el("title", {}, `trial ${t.number} (${t.state}) · ${metric} ${t.metric ?? "–"}`));
    lines.append(line);
  }
  svg.append(lines);

  axes.forEach((a, i) => {
    const g = el("g", { class: `axis ${a.kind}` });
    g.append(el("line", { x1: x(i), x2: x(i), y1: y(0), y2: y(1), class: "axis-line" }));
    const anchor = i === 0 ? "start" : i === axes.length - 1 ? "end" : "middle";
    const lx = i === 0 ? x(i) - PAD.left + 4 : i === axes.length - 1 ? x(i) + PAD.right - 4 : x(i);
    g.append(el("text", { x: lx, y: PAD.top - 16, "text-anchor": anchor, class: "axis-name" }, a.kind === "log" ? `${a.name} (log)` : a.name));
    for (const [p, label] of a.ticks) {
      g.append(el("line", { x1: x(i) - 3, x2: x(i) + 3, y1: y(p), y2: y(p), class: "axis-line" }));
      g.append(el("text", { x: x(i) + (i === axes.length - 1 ? 6 : -6), y: y(p) + 4, "text-anchor": i === axes.length - 1 ? "start" : "end", class: "tick" }, label));
    }
    svg.append(g);
  });
  return svg;
}
