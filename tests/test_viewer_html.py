"""`atlas html` on real replayed and graded runs: one self-contained file, opened from disk in a real
headless Chromium (Debian's `chromium` and `chromium-driver`, driven by selenium): the overview lists
the instances, a filter narrows it, a click opens an instance with its diff, test results and steps.
Screenshots are saved under the test's tmp dir; ATLAS_DOCS_IMAGES=1 also refreshes docs/images/."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from viewer_runs import EMPTY_PATCH, ERRORED, HOSTILE_OUTPUT, INSTANCES, RESOLVED, UNRESOLVED, replayed_run

from atlas_agent.tasks import load_tasks
from helpers import atlas, one_line_error

pytestmark = pytest.mark.docker
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
WIDTH, HEIGHT = 1400, 900


@pytest.fixture(scope="module")
def runs(docker_client, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The mixed run, and the bundled demo over the same instances (it resolves the same three)."""
    root = tmp_path_factory.mktemp("viewer-html")
    return replayed_run(root), replayed_run(root, "demo", "replay:atlas-mini-demo")


@pytest.fixture(scope="module")
def page(runs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("viewer-page") / "mixed.html"
    result = atlas("html", str(runs[0]), "-o", str(path), cwd=path.parent)
    assert result.returncode == 0, result.stderr
    assert f"wrote {path} (1 run(s), 6 instances" in result.stderr
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM and CHROMEDRIVER):
        reason = "chromium and chromium-driver are not installed (scripts/setup.sh installs them)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={WIDTH},{HEIGHT}",
    ):
        options.add_argument(argument)
    # the driver Debian installs: selenium never downloads one
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def open_page(browser: Any, url: str) -> None:
    """A fresh load: the tests share one browser, and a URL differing only in its hash keeps the page."""
    browser.get("about:blank")
    browser.get(url)


def texts(browser: Any, selector: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [element.text for element in browser.find_elements(By.CSS_SELECTOR, selector)]


def row_ids(browser: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    rows = browser.find_elements(By.CSS_SELECTOR, "#instances tbody tr")
    return [row.get_attribute("data-instance") for row in rows]


def choose(browser: Any, select_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, select_id)).select_by_value(value)


def screenshot(browser: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    assert browser.save_screenshot(str(path)) and path.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("ATLAS_DOCS_IMAGES"):
        DOCS_IMAGES.mkdir(exist_ok=True)
        shutil.copy(path, DOCS_IMAGES / name)


def test_the_page_is_one_file_that_fetches_nothing(page: Path) -> None:
    text = page.read_text()
    assert "default-src 'none'" in text, "the page's policy forbids every fetch"
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|https?://", text), "no external resource"
    assert all(iid in text for iid in INSTANCES), "the data is embedded"
    assert HOSTILE_OUTPUT not in text and "\\u003c/script>\\u003cscript>window.pwned" in text


def test_overview_filter_and_instance_in_chromium(browser: Any, page: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, page.as_uri())
    assert row_ids(browser) == INSTANCES
    assert browser.find_element(By.ID, "shown-count").text == "6 of 6 instances"
    assert not browser.find_element(By.ID, "difficulty-filter").is_displayed(), "atlas-mini labels no difficulty"
    outcomes = dict(zip(row_ids(browser), texts(browser, "#instances tbody td .badge:not(.flag)"), strict=True))
    assert outcomes[UNRESOLVED] == "unresolved" and outcomes[ERRORED] == "error"
    assert outcomes[EMPTY_PATCH] == "empty patch" and {outcomes[iid] for iid in RESOLVED} == {"resolved"}
    screenshot(browser, tmp_path, "html-overview.png")

    choose(browser, "filter-outcome", "resolved")
    assert row_ids(browser) == RESOLVED and browser.find_element(By.ID, "shown-count").text == "3 of 6 instances"
    choose(browser, "filter-repo", "atlas/tally")
    assert row_ids(browser) == ["atlas__tally-2"]
    choose(browser, "filter-outcome", "")
    assert row_ids(browser) == ["atlas__tally-1", "atlas__tally-2"]

    browser.find_element(By.CSS_SELECTOR, f"#instances tbody tr[data-instance='{UNRESOLVED}']").click()
    assert browser.find_element(By.ID, "detail").is_displayed()
    assert not browser.find_element(By.ID, "overview").is_displayed()
    assert browser.find_element(By.ID, "detail-title").text.startswith(UNRESOLVED)
    assert texts(browser, "#detail-badges .badge") == ["unresolved", "tamper: stripped"]
    facts = browser.find_element(By.ID, "detail-facts").text
    assert "tamper stripped\ntests/test_money.py: test file of the task" in facts
    assert "+# rounding: Money.rounded" in texts(browser, "#diff .add")
    task = next(task for task in load_tasks("atlas-mini", "test") if task.instance_id == UNRESOLVED)
    assert texts(browser, "#tests li.test.fail") == task.FAIL_TO_PASS
    assert texts(browser, "#tests li.test.pass") == task.PASS_TO_PASS
    assert len(texts(browser, "#timeline li.step")) == 4
    screenshot(browser, tmp_path, "html-instance.png")


def test_observations_are_collapsed_text_never_html(browser: Any, page: Path) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, f"{page.as_uri()}#run=0&instance={UNRESOLVED}")
    observation = browser.find_element(By.CSS_SELECTOR, "#step-1 details.obs")
    assert observation.get_attribute("open") is None
    preview = observation.find_element(By.CSS_SELECTOR, "summary pre").text
    assert preview.splitlines() == [HOSTILE_OUTPUT, "1", "2", "... 25 more lines ...", "28", "29", "30"]
    observation.find_element(By.TAG_NAME, "summary").click()
    whole = observation.find_element(By.CSS_SELECTOR, ":scope > pre").text
    assert whole.splitlines() == [HOSTILE_OUTPUT, *map(str, range(1, 31))]
    assert browser.execute_script("return window.pwned") is None, "run output never runs as script"
    browser.find_element(By.ID, "back").click()
    assert browser.find_element(By.ID, "overview").is_displayed() and len(row_ids(browser)) == 6


def test_an_errored_instance_shows_its_cause(browser: Any, page: Path) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, f"{page.as_uri()}#run=0&instance={ERRORED}")
    facts = browser.find_element(By.ID, "detail-facts").text
    assert "replay script has no steps for atlas__textkit-1 and no `default` list" in facts
    assert browser.find_element(By.ID, "tests").text == "no test results: error"
    assert texts(browser, "#timeline li") == ["no steps recorded"]


def test_several_runs_are_compared_on_one_page(browser: Any, runs: tuple[Path, Path], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    path = tmp_path / "both.html"
    result = atlas("html", *map(str, runs), "-o", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    open_page(browser, path.as_uri())
    screenshot(browser, tmp_path, "html-compare.png")
    assert texts(browser, "#run-select option") == ["mixed", "demo"]
    # the comparison: both resolve the same three; the plot is embedded as a data: URI
    both = browser.find_element(By.CSS_SELECTOR, "#comparison table[data-table='resolved'] tbody tr")
    assert both.text.startswith("both 3 ")
    assert browser.find_element(By.CSS_SELECTOR, "#comparison img").get_attribute("src").startswith("data:image/png")
    matrix = {row[0]: row[1:] for row in (line.split() for line in texts(browser, "#matrix tbody tr"))}
    assert matrix[UNRESOLVED] == ["unresolved", "empty", "patch"] and matrix[ERRORED] == ["error", "empty", "patch"]
    choose(browser, "run-select", "1")
    assert browser.find_element(By.ID, "run-summary").text.startswith("demo · replay:atlas-mini-demo")
    assert row_ids(browser) == INSTANCES
    browser.find_element(By.CSS_SELECTOR, f"#instances tbody tr[data-instance='{UNRESOLVED}']").click()
    assert texts(browser, "#detail-badges .badge") == ["empty patch"]
    assert browser.find_element(By.ID, "other-runs").text == "in other runs: mixed unresolved"
    assert not browser.find_element(By.ID, "comparison").is_displayed()


def test_difficulty_filter_when_the_dataset_labels_it(browser: Any, runs: tuple[Path, Path], tmp_path: Path) -> None:
    """atlas-mini labels no difficulty; a report whose dataset does (SWE-bench Verified) gets the filter."""
    from selenium.webdriver.common.by import By

    labelled = tmp_path / "runs" / "mixed"
    shutil.copytree(runs[0], labelled)
    report = json.loads((labelled / "report.json").read_text())
    for item in report["instances"]:
        item["difficulty"] = "<15 min fix" if item["instance_id"] in RESOLVED else "1-4 hours"
    (labelled / "report.json").write_text(json.dumps(report))
    path = tmp_path / "labelled.html"
    assert atlas("html", str(labelled), "-o", str(path), cwd=tmp_path).returncode == 0
    open_page(browser, path.as_uri())
    assert browser.find_element(By.ID, "difficulty-filter").is_displayed()
    assert "difficulty" in texts(browser, "#instances thead th")
    choose(browser, "filter-difficulty", "1-4 hours")
    assert row_ids(browser) == [EMPTY_PATCH, UNRESOLVED, ERRORED]


def test_runs_that_cannot_be_compared_still_get_a_page(runs: tuple[Path, Path], tmp_path: Path) -> None:
    ungraded = tmp_path / "runs" / "demo"
    shutil.copytree(runs[1], ungraded)
    (ungraded / "report.json").unlink()
    path = tmp_path / "both.html"
    assert atlas("html", str(runs[0]), str(ungraded), "-o", str(path), cwd=tmp_path).returncode == 0
    text = path.read_text()
    assert "Not compared: " in text and "has not been graded" in text
    assert '"run_id":"demo"' in text and '"graded":false' in text, "its overview is there all the same"


def test_an_unwritable_output_is_one_line(runs: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    result = atlas("html", str(runs[0]), "-o", str(tmp_path / "a-file" / "page.html"), cwd=tmp_path)
    assert one_line_error(result).startswith(f"error: cannot write {tmp_path / 'a-file' / 'page.html'}: ")
