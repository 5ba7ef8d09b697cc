// The job page's "System" panel: what the worker reported at its log points
// (worker/system_series.py) — training throughput, the process's resident memory and,
// on CUDA, the GPU memory its tensors hold. The series come with the page's curves
// poll (same `since`), so this panel only draws them.

import { Chart } from "./charts.js";
import { h, num } from "./util.js";

export const SYS_METRICS = ["sys_samples_per_s", "sys_rss_mib", "sys_gpu_mem_mib", "sys_gpu_max_mem_mib", "sys_time"];

// Amounts, not trends: each chart's y axis starts at 0 (an unlabelled point at y = 0),
// so a 0.1 MiB wobble of RSS does not fill the panel.
const ZERO = { label: "", legend: false, color: "rgba(0, 0, 0, 0)", width: 0 };
const anchor = (s) => ({ x: s.x.length ? [s.x[0]] : [], y: s.x.length ? [0] : [] });

export function systemPanel() {
  const rateBox = h("div", { id: "chart-sys-rate" });
  const memBox = h("div", { id: "chart-sys-mem" });
  const summary = h("div", { class: "muted small", id: "sys-summary" }, "No system figures yet.");
  const el = h("div", { class: "panel", id: "job-system" },
    h("h3", {}, "System"),
    h("div", { class: "charts" }, rateBox, memBox),
    summary);
  // made at the first draw, after the page's curve charts (whose toolbar leads the page)
  let rate = null;
  let mem = null;
  function make() {
    rate = new Chart(rateBox, { title: "Samples/s (mean of the attempt so far)", height: 200, series: [{ label: "samples/s", color: "#0891b2" }, ZERO] });
    mem = new Chart(memBox, {
      title: "Memory (MiB)",
      height: 200,
      series: [
        { label: "CPU RSS", color: "#7c3aed" },
        { label: "GPU allocated", color: "#16a34a" },
        { label: "GPU peak", color: "#16a34a", dash: [4, 4], width: 1 },
        ZERO,
      ],
    });
  }

  const last = (s) => (s && s.y.length ? s.y[s.y.length - 1] : null);

  /** series: {name: {x, y}} for SYS_METRICS (the page's merged curves). */
  function draw(series) {
    const s = (name) => series[name] || { x: [], y: [] };
    if (!rate) make();
    rate.set([s("sys_samples_per_s"), anchor(s("sys_samples_per_s"))]);
    // data-points counts the anchor too: these count the figures drawn
    rateBox.dataset.samples = String(s("sys_samples_per_s").x.length);
    memBox.dataset.samples = String(s("sys_rss_mib").x.length);
    mem.set([s("sys_rss_mib"), s("sys_gpu_mem_mib"), s("sys_gpu_max_mem_mib"), anchor(s("sys_rss_mib"))]);
    const parts = [];
    if (last(s("sys_samples_per_s")) !== null) parts.push(`${Math.round(last(s("sys_samples_per_s"))).toLocaleString()} samples/s`);
    if (last(s("sys_rss_mib")) !== null) parts.push(`RSS ${num(last(s("sys_rss_mib")), 4)} MiB`);
    if (last(s("sys_gpu_mem_mib")) !== null) parts.push(`GPU ${num(last(s("sys_gpu_mem_mib")), 4)} MiB (peak ${num(last(s("sys_gpu_max_mem_mib")), 4)})`);
    else if (parts.length) parts.push("GPU memory: CUDA jobs only");
    summary.textContent = parts.length ? `Latest: ${parts.join(" · ")}` : "No system figures yet (workers report them at each log point).";
  }

  return { el, draw, destroy: () => [rate, mem].forEach((c) => c && c.destroy()) };
}
