"""The dashboard's dataset pages (#/datasets, #/datasets/{id}) in headless Chromium."""

from __future__ import annotations

import numpy as np
from support import wait_for

from tests.dashboard.conftest import browser  # noqa: F401 - the fixture
from tests.datasets.files import images, npz, upload


def test_dataset_list_and_page_show_shape_classes_and_samples(ds_api, client, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    x, y = images(n=30, k=3, hw=(8, 8))
    ds = client.post(
        "/datasets", files={"file": ("page.npz", npz(x=x, y=y))}, data={"name": "page set"}
    ).json()
    tab = upload(client, "tab.npz", npz(x=np.ones((20, 3), np.float32), y=np.arange(20) % 2))
    assert tab.status_code == 201
    drv = browser
    drv.get(f"{ds_api.url}/#/datasets")
    wait_for(
        lambda: drv.find_elements(By.CSS_SELECTOR, f"#datasets-table tr[data-id='{ds['id']}']"),
        15,
        what="list row",
    )
    row = drv.find_element(By.CSS_SELECTOR, f"#datasets-table tr[data-id='{ds['id']}']").text
    assert "page set" in row and "uint8" in row and "(N × 3 × 8 × 8)" in row and "24 / 6" in row
    assert "digits" in drv.find_element(By.ID, "datasets-table").text  # built-ins listed too
    assert "active" in drv.find_element(By.ID, "nav-datasets").get_attribute("class")

    drv.find_element(By.CSS_SELECTOR, f"tr[data-id='{ds['id']}'] a.dataset-link").click()
    wait_for(lambda: drv.find_elements(By.ID, "dataset-facts"), 15, what="dataset page")
    facts = drv.find_element(By.ID, "dataset-facts").text
    assert "uint8" in facts and "(N × 3 × 8 × 8)" in facts
    bars = drv.find_elements(By.CSS_SELECTOR, "#class-counts tbody tr")
    assert [b.text.split()[-1] for b in bars] == ["10", "10", "10"]
    img = drv.find_element(By.ID, "dataset-samples")
    wait_for(
        lambda: drv.execute_script("return arguments[0].naturalWidth", img) > 0, 15, what="samples"
    )
    assert drv.execute_script(
        "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img
    ) == [256, 256]

    drv.get(f"{ds_api.url}/#/datasets/{tab.json()['id']}")  # tabular: no sample grid
    wait_for(lambda: drv.find_elements(By.ID, "dataset-facts"), 15, what="tabular page")
    assert not drv.find_elements(By.ID, "dataset-samples")
