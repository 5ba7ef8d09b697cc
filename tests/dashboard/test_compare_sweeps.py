"""Compare and sweep pages in a real headless Chromium, against the real API, Redis and worker.

Compare: two tiny digits jobs that differ in optimizer.lr and regularization.mixup
(and, with long names, in the name): the config diff lists exactly the spec paths
that differ (worked out here from the two specs, the name aside), the epoch axis ticks
whole epochs and the names are shown whole. Sweeps: a 2 × 3 grid over two paths with
two seeds: no "mean ± std" cell of the results table wraps (its text is one line box,
at a narrow window too), the heatmap has one cell per grid point holding the mean the
API reports, with the grid values as axis labels, and the band select narrows six
bands to one. Screenshots: docs/screenshots/compare-diff.png, sweep-heatmap.png.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from support import ROOT, plain_spec, submit, wait_for
from support.waiting import wait_done

SHOTS = ROOT / "docs" / "screenshots"
LONG_NAMES = [
    "baseline at the default learning rate, no mixup, two epochs",
    "twice the learning rate with mixup alpha 0.2, two epochs",
]
GRID = {"optimizer.lr": [0.05, 0.2], "regularization.label_smoothing": [0.0, 0.1, 0.2]}

LINES_JS = """
// line boxes of each cell's text: > 1 when it wraps
return [...document.querySelectorAll(arguments[0])].map((td) => {
  const r = document.createRange();
  r.selectNodeContents(td);
  const lh = parseFloat(getComputedStyle(td).lineHeight);
  return [td.textContent, r.getBoundingClientRect().height / lh];
});
"""


@pytest.fixture(scope="module")
def base_url(service) -> str:
    r = httpx.get(f"{service.api_url}/", timeout=10)
    if r.status_code == 404:
        pytest.skip("GET / is 404: the dashboard is not mounted")
    return service.api_url.rstrip("/")


@pytest.fixture(scope="module")
def jobs(service, browser) -> list[dict]:
    """After `browser`, so a missing Chromium skips before training anything."""
    a = plain_spec(epochs=2)
    b = plain_spec(epochs=2)
    b["optimizer"] = {"lr": 0.1}
    b["regularization"] = {"mixup": {"alpha": 0.2}}
    with service.client() as c:
        ids = []
        for spec, name in zip((a, b), LONG_NAMES, strict=True):
            ids.append(submit(c, {**spec, "name": name})["id"])
        done = [wait_done(c, i, timeout=180) for i in ids]
    assert all(j["status"] == "succeeded" for j in done), done
    return done


def flat(obj, prefix: str = "") -> dict[str, str]:
    """Dotted paths of the leaves (lists as JSON), written independently of chartmath.js."""
    if isinstance(obj, dict) and obj:
        out: dict[str, str] = {}
        for k, v in obj.items():
            out.update(flat(v, f"{prefix}.{k}" if prefix else k))
        return out
    return {prefix: json.dumps(obj)}


def test_compare_diff_axis_and_names(base_url, browser, jobs):
    drv = browser
    ids = ",".join(j["id"] for j in jobs)
    drv.get(f"{base_url}/#/compare?ids={ids}&metric=val_acc&x=epoch")
    rows = wait_for(
        lambda: drv.find_elements("css selector", "#compare-diff tbody tr"), what="the diff"
    )
    paths = [r.get_attribute("data-path") for r in rows]
    fa, fb = (flat(j["spec"]) for j in jobs)
    want = sorted(p for p in fa.keys() | fb.keys() if p != "name" and fa.get(p) != fb.get(p))
    assert paths == want
    assert "optimizer.lr" in paths
    assert all(p == "optimizer.lr" or p.startswith("regularization.mixup") for p in paths)
    lr_cells = [
        td.text for td in rows[paths.index("optimizer.lr")].find_elements("css selector", "td")
    ]
    assert lr_cells == ["optimizer.lr", "0.05", "0.1"]

    # whole epochs on the x axis; the val points at 1 and 2
    u = drv.execute_script(
        "const u = document.querySelector('#compare-chart').uplot;"
        "return {ticks: u.axes[0]._splits, x: Array.from(u.data[0])};"
    )
    assert u["ticks"] == [1, 2]
    assert u["x"] == [1.0, 2.0]
    # names in full (text and tooltip), in the table, the diff header and the legend
    for name in LONG_NAMES:
        links = [a for a in drv.find_elements("css selector", "a.job-name") if a.text == name]
        assert len(links) == 2 and all(name in a.get_attribute("title") for a in links)
        assert name in drv.find_element("css selector", "#compare-chart .u-legend").text
    drv.execute_script("document.getElementById('compare-chart').scrollIntoView()")
    SHOTS.mkdir(parents=True, exist_ok=True)
    time.sleep(0.3)  # let the last frame paint
    drv.save_screenshot(str(SHOTS / "compare-diff.png"))


@pytest.fixture(scope="module")
def grid_sweep(service, browser) -> dict:
    body = {
        "name": "grid heatmap",
        "base": plain_spec(epochs=1),
        "grid": GRID,
        "seeds": 2,
        "max_concurrent": 2,
    }
    with service.client() as c:
        r = c.post("/sweeps", json=body)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        wait_for(
            lambda: c.get(f"/sweeps/{sid}").json()["status"] == "succeeded",
            timeout=240,
            interval=0.5,
            what="the grid sweep to succeed",
        )
        return c.get(f"/sweeps/{sid}?metric=final_val_acc").json()


def test_sweep_table_heatmap_and_bands(base_url, browser, grid_sweep):
    from selenium.webdriver.support.ui import Select

    drv = browser
    drv.get(f"{base_url}/#/sweeps/{grid_sweep['id']}")
    cells = wait_for(
        lambda: (
            (c := drv.find_elements("css selector", "#sweep-heatmap .hm-cell"))
            and len(c) == 6
            and c
        ),
        what="six heatmap cells",
    )
    # one cell per grid point, its mean the API's, in row-major grid order
    means = {r["variant"]: r["final_val_acc"]["mean"] for r in grid_sweep["results"]}
    for v, cell in zip(grid_sweep["variants"], cells, strict=True):
        assert int(cell.get_attribute("data-variant")) == v["index"]
        assert float(cell.get_attribute("data-mean")) == pytest.approx(means[v["index"]])
        assert f"{means[v['index']] * 100:.2f}" in cell.text and "±" in cell.text
    rows = [e.text for e in drv.find_elements("css selector", "#sweep-heatmap [data-row]")]
    cols = [e.text for e in drv.find_elements("css selector", "#sweep-heatmap [data-col]")]
    assert rows == ["0.05", "0.2"] and cols == ["0", "0.1", "0.2"]

    # no ± cell wraps, at this width or a narrow one
    try:
        for width in (1400, 820):
            drv.set_window_size(width, 1100)
            time.sleep(0.2)
            got = drv.execute_script(LINES_JS, "#sweep-results td.num")
            pm = [(t, n) for t, n in got if "±" in t]
            assert len(pm) >= 6 * 4
            assert all("\u00a0±\u00a0" in t and n < 1.5 for t, n in pm), pm
    finally:
        drv.set_window_size(1400, 1100)

    # train loss (many points): six bands; one when a variant is picked
    Select(drv.find_element("id", "sweep-curve-metric")).select_by_value("train_loss")
    wait_for(lambda: "curve=train_loss" in drv.current_url, what="curve=train_loss in the URL")
    wait_for(
        lambda: (
            int(drv.find_element("id", "sweep-chart").get_attribute("data-points")) >= 6 * 3 * 4
        ),
        what="the train loss means and bands",
    )
    wait_for(
        lambda: (
            drv.execute_script("return document.querySelector('#sweep-chart').uplot.bands.length")
            == 6
        ),
        what="six bands",
    )
    Select(drv.find_element("id", "sweep-band")).select_by_value("2")
    wait_for(
        lambda: (
            drv.execute_script("return document.querySelector('#sweep-chart').uplot.bands.length")
            == 1
        ),
        what="one band",
    )
    assert "band=2" in drv.current_url
    # the chart was rebuilt for each metric: its x range is its data's, no stale zoom
    u = drv.execute_script(
        "const u = document.querySelector('#sweep-chart').uplot;"
        "return {x: [u.scales.x.min, u.scales.x.max], data: Array.from(u.data[0])};"
    )
    assert u["x"] == pytest.approx([min(u["data"]), max(u["data"])])
    Select(drv.find_element("id", "sweep-band")).select_by_value("all")
    wait_for(
        lambda: (
            drv.execute_script("return document.querySelector('#sweep-chart').uplot.bands.length")
            == 6
        ),
        what="six bands again",
    )
    drv.execute_script("document.getElementById('sweep-heatmap-panel').scrollIntoView()")
    SHOTS.mkdir(parents=True, exist_ok=True)
    time.sleep(0.3)  # let the last frame paint
    drv.save_screenshot(str(SHOTS / "sweep-heatmap.png"))
