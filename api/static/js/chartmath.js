// Pure helpers for the charts and the views that feed them (no DOM, no uPlot), so
// that tests/dashboard/chartmath.test.mjs can check them in node against numbers
// worked out by hand.

/**
 * TensorBoard's debiased exponential moving average: s_t = α·s_{t−1} + (1−α)·y_t with
 * s_0 = 0, shown as s_t / (1 − α^t), t counting the finite points only (a non-finite
 * or missing value gives null and leaves the average as it was). α = 0 returns y.
 */
export function ema(values, alpha) {
  const a = Math.min(Math.max(Number(alpha) || 0, 0), 0.999);
  let s = 0;
  let t = 0;
  return values.map((y) => {
    if (typeof y !== "number" || !Number.isFinite(y)) return null;
    if (a === 0) return y;
    t += 1;
    s = a * s + (1 - a) * y;
    return s / (1 - a ** t);
  });
}

/** The q-quantile of an ascending array, interpolated linearly (numpy's default). */
export function quantile(sorted, q) {
  if (!sorted.length) return null;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * The y range of the bulk of the values, ignoring the diverged ones: non-finite, or
 * larger in magnitude than `factor` × the q-quantile of |y| (when the top 5% are
 * themselves diverged, more than factor² past the median, the median stands in).
 * With log, only values > 0 count. Returns {min, max, limit, diverged} (diverged:
 * how many values were left out, non-finite ones included) or null with no finite value.
 */
export function robustRange(values, { factor = 1e3, q = 0.95, log = false } = {}) {
  let nonFinite = 0;
  const ok = [];
  for (const v of values) {
    if (v === null || v === undefined) continue;
    if (typeof v !== "number" || !Number.isFinite(v)) nonFinite++;
    else if (!log || v > 0) ok.push(v);
  }
  if (!ok.length) return null;
  const mags = ok.map(Math.abs).sort((a, b) => a - b);
  const top = quantile(mags, q);
  const mid = quantile(mags, 0.5);
  let scale = top;
  if (mid > 0 && top > factor * factor * mid) scale = mid;
  const limit = scale > 0 ? factor * scale : Infinity;
  let min = Infinity;
  let max = -Infinity;
  let off = 0;
  for (const v of ok) {
    if (Math.abs(v) > limit) {
      off++;
      continue;
    }
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max, limit, diverged: off + nonFinite };
}

/**
 * Whole-number ticks in [min, max], at most maxTicks of them: the smallest step of
 * 1, 2, 5, 10, 20, 50, … that fits (the epoch axis: no fractional epochs).
 */
export function wholeTicks(min, max, maxTicks = 10) {
  if (!Number.isFinite(min) || !Number.isFinite(max) || max < min) return [];
  const lo = Math.ceil(min - 1e-9);
  const hi = Math.floor(max + 1e-9);
  if (hi < lo) return [];
  const n = Math.max(1, Math.floor(maxTicks));
  let step = 1;
  search: for (let mag = 1; mag < 1e15; mag *= 10) {
    for (const m of [1, 2, 5]) {
      step = m * mag;
      if (Math.floor(hi / step) - Math.ceil(lo / step) + 1 <= n) break search;
    }
  }
  const out = [];
  for (let v = Math.ceil(lo / step) * step + 0; v <= hi; v += step) out.push(v);
  return out;
}

/**
 * Steps (0-based update index) to another x: epoch = (step + 1) / steps_per_epoch (the
 * end of epoch e reads e + 1), fraction = (step + 1) / total_steps (the last update
 * reads 1). Without the divisor the steps come back unchanged.
 */
export function stepsTo(steps, mode, { stepsPerEpoch = null, totalSteps = null } = {}) {
  const d = mode === "epoch" ? stepsPerEpoch : mode === "fraction" ? totalSteps : null;
  return d ? steps.map((s) => (s + 1) / d) : steps.slice();
}

/**
 * Steps → seconds since t0, by the job's clock: `clock` = {x: steps, y: unix times} of the
 * log points (series sys_time, sorted by step). Between two clock points a step's time is
 * interpolated linearly; before the first and after the last it is extrapolated with the
 * nearest segment's rate (one point: that point's time). null without a clock.
 */
export function stepsToWall(steps, clock, t0 = null) {
  const cx = (clock && clock.x) || [];
  const cy = (clock && clock.y) || [];
  const n = Math.min(cx.length, cy.length);
  if (!n) return steps.map(() => null);
  const origin = t0 === null ? cy[0] : t0;
  const at = (i, s) => {
    const dx = cx[i + 1] - cx[i];
    return dx ? cy[i] + ((cy[i + 1] - cy[i]) * (s - cx[i])) / dx : cy[i];
  };
  let i = 0;
  return steps.map((s) => {
    if (n === 1) return cy[0] - origin;
    while (i > 0 && s < cx[i]) i--; // steps may come unsorted
    while (i < n - 2 && s > cx[i + 1]) i++;
    return at(i, s) - origin;
  });
}

/** {a: {b: 1, c: [1, 2]}} → {"a.b": "1", "a.c": "[1,2]"}: leaves as JSON text. */
export function flatten(obj, prefix = "", out = {}) {
  if (obj !== null && typeof obj === "object" && !Array.isArray(obj)) {
    const keys = Object.keys(obj);
    if (!keys.length && prefix) out[prefix] = "{}";
    for (const k of keys) flatten(obj[k], prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out[prefix] = JSON.stringify(obj);
  }
  return out;
}

/**
 * The spec paths whose values differ between the objects (a path missing from some
 * counts as differing): [{path, values: [text or null per object]}], sorted by path.
 */
export function diffPaths(objs) {
  const flat = objs.map((o) => flatten(o || {}));
  const paths = new Set(flat.flatMap((f) => Object.keys(f)));
  const rows = [];
  for (const path of [...paths].sort()) {
    const values = flat.map((f) => (path in f ? f[path] : null));
    if (values.some((v) => v !== values[0])) rows.push({ path, values });
  }
  return rows;
}

/** A sequential colour for t in [0, 1] (light to dark blue), as "rgb(r,g,b)". */
export function heatColor(t) {
  const x = Number.isFinite(t) ? Math.min(Math.max(t, 0), 1) : 0;
  const lo = [239, 246, 255];
  const hi = [30, 64, 175];
  const c = lo.map((v, i) => Math.round(v + (hi[i] - v) * x));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}
