// node --test tests/dashboard/chartmath.test.mjs (run by test_charts.py): the pure chart
// helpers against values worked out by hand in the comments.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

// chartmath.js is an ES module served to the browser; the repo's package.json has no
// "type", so import its text as a module instead of through the CommonJS loader.
const src = readFileSync(new URL("../../api/static/js/chartmath.js", import.meta.url), "utf8");
const m = await import(`data:text/javascript,${encodeURIComponent(src)}`);

const close = (a, b, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);

test("debiased EMA", () => {
  // α = .5: s1 = .5 → .5/.5 = 1; s2 = .25 + 1 = 1.25 → 1.25/.75; s3 = .625 + 1.5 = 2.125 → /.875
  const got = m.ema([1, 2, 3], 0.5);
  [1, 1.25 / 0.75, 2.125 / 0.875].forEach((v, i) => close(got[i], v));
  // a gap stays a gap and does not advance t: [1, null, 2] → [1, null, 1.25/.75]
  const gap = m.ema([1, null, 2], 0.5);
  assert.equal(gap[1], null);
  close(gap[2], 1.25 / 0.75);
  // α = .6: s1 = 4 → 4/.4 = 10; s2 = 2.4 → 2.4/.64 = 3.75
  const b = m.ema([10, 0], 0.6);
  close(b[0], 10);
  close(b[1], 3.75);
  assert.deepEqual(m.ema([3, NaN, 4], 0), [3, null, 4]);
});

test("quantile interpolates like numpy", () => {
  close(m.quantile([1, 2, 3, 4], 0.95), 3.85); // pos 2.85: 3 + .85
  close(m.quantile([5], 0.5), 5);
});

test("robust range ignores diverged points", () => {
  // 1..100 and 1e24: the 95% quantile of 101 values is sorted[95] = 96, limit 96000
  const ys = Array.from({ length: 100 }, (_, i) => i + 1);
  let r = m.robustRange([...ys, 1e24]);
  assert.deepEqual([r.min, r.max, r.diverged], [1, 100, 1]);
  close(r.limit, 96000);
  // 1..10 and 1e24: the 95% quantile is 5e23 (itself diverged, > 1e6 × the median 6):
  // the median stands in, limit 6000
  r = m.robustRange([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1e24, NaN, Infinity, null]);
  assert.deepEqual([r.min, r.max, r.diverged, r.limit], [1, 10, 3, 6000]);
  // a loss from 2.3 to 0.01 is not diverged
  r = m.robustRange([2.3, 0.5, 0.01]);
  assert.deepEqual([r.min, r.max, r.diverged], [0.01, 2.3, 0]);
  // log: only positive values
  r = m.robustRange([-1, 0, 0.1, 10], { log: true });
  assert.deepEqual([r.min, r.max, r.diverged], [0.1, 10, 0]);
  assert.equal(m.robustRange([null, null]), null);
});

test("whole ticks", () => {
  assert.deepEqual(m.wholeTicks(0.05, 3.0, 10), [1, 2, 3]);
  assert.deepEqual(m.wholeTicks(0.05, 40, 10), [5, 10, 15, 20, 25, 30, 35, 40]);
  assert.deepEqual(m.wholeTicks(0, 100, 6), [0, 20, 40, 60, 80, 100]);
  assert.deepEqual(m.wholeTicks(0.2, 0.8, 10), []);
});

test("steps to epochs and fractions", () => {
  // 22 steps per epoch: update 21 ends epoch 1, update 43 ends epoch 2 (= 1.0 of 44)
  assert.deepEqual(m.stepsTo([0, 21, 43], "epoch", { stepsPerEpoch: 22 }), [1 / 22, 1, 2]);
  assert.deepEqual(m.stepsTo([0, 21, 43], "fraction", { totalSteps: 44 }), [1 / 44, 0.5, 1]);
  assert.deepEqual(m.stepsTo([0, 21], "epoch", {}), [0, 21]);
  // clock: step 9 at t=100 s, step 19 at t=102 s, step 29 at t=106 s (0.2 s, then 0.4 s a step)
  const clock = { x: [9, 19, 29], y: [100, 102, 106] };
  // 9 → 0; 14 halfway to 19 → 1; 24 halfway to 29 → 4; 4 before the first, at 0.2 s/step → −1;
  // 34 after the last, at 0.4 s/step → 8
  assert.deepEqual(m.stepsToWall([9, 14, 19, 24, 29], clock), [0, 1, 2, 4, 6]);
  assert.deepEqual(m.stepsToWall([4, 34], clock), [-1, 8]);
  assert.deepEqual(m.stepsToWall([9, 29], clock, 95), [5, 11]); // from a t0 before the first point
  assert.deepEqual(m.stepsToWall([3, 50], { x: [7], y: [42] }), [0, 0]); // one point: its time
  assert.deepEqual(m.stepsToWall([1, 2], null), [null, null]);
});

test("spec diff lists only differing paths", () => {
  const a = { optimizer: { lr: 0.1, name: "sgd" }, regularization: { mixup: { alpha: 0 } }, t: [1, 2] };
  const b = { optimizer: { lr: 0.2, name: "sgd" }, regularization: { mixup: { alpha: 0.2 } }, t: [1, 2] };
  assert.deepEqual(m.diffPaths([a, b]), [
    { path: "optimizer.lr", values: ["0.1", "0.2"] },
    { path: "regularization.mixup.alpha", values: ["0", "0.2"] },
  ]);
  const c = { ...b, t: [1, 3], extra: null };
  assert.deepEqual(m.diffPaths([b, c]), [
    { path: "extra", values: [null, "null"] },
    { path: "t", values: ["[1,2]", "[1,3]"] },
  ]);
});
