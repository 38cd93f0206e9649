"""The MLflow UI as a person sees it: a real sweep, `python -m analysis.ui` on 127.0.0.1, headless Chromium.

Needs Debian's chromium and chromium-driver (.ci/run installs them when it is root) and selenium.
Set MYXTTS_UI_SCREENSHOT=path to keep the screenshot (reports/ui/runs_table.png comes from it).
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from launch import base_args, run, runs_of

from runner.schema import PROJECT_ROOT

pytestmark = pytest.mark.slow
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
if not (CHROMIUM and DRIVER):
    pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)",
                allow_module_level=True)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(base: str, server, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, "the MLflow UI exited"
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"no MLflow UI at {base} after {seconds} s")


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,700"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_the_ui_lists_the_sweep_parent_its_children_and_the_preset_column(tmp_path, small_corpus, browser):
    sweep = run(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                 "+preset=basic,legacy", "seed=0", "experiment=browser", "trainer.steps=3",
                 "trainer.synthesize=false", *base_args(tmp_path, small_corpus)])
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    _, runs = runs_of(tmp_path, "browser")
    parent = next(r for r in runs if r.data.tags.get("sweep") == "true")

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "analysis.ui", "--tracking-uri",
                               f"sqlite:///{tmp_path / 'mlflow.db'}", "--port", str(port)], cwd=PROJECT_ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        url = server.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/") and "workflowType=machine_learning" in url
        _wait_healthy(f"http://127.0.0.1:{port}", server)
        browser.get(url)
        wait = WebDriverWait(browser, 60)
        # The runs table (not the GenAI overview) with the sweep's parent; its children are folded under it.
        wait.until(lambda d: parent.info.run_name in d.find_element(By.TAG_NAME, "body").text)
        for close in browser.find_elements(By.CSS_SELECTOR, "button[aria-label='Close']"):
            if close.is_displayed():  # the assistant panel takes a third of the page from the table
                close.click()
        browser.find_element(By.CSS_SELECTOR, "button[data-component-id*='runnamecellrenderer']").click()
        wait.until(lambda d: "legacy-s0" in d.find_element(By.TAG_NAME, "body").text)
        columns = next(b for b in browser.find_elements(By.CSS_SELECTOR, "button[data-testid='column-selection-dropdown']")
                       if "Columns" in b.text)
        columns.click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[placeholder='Search columns']"))
        browser.find_element(By.CSS_SELECTOR, "input[placeholder='Search columns']").send_keys("preset")
        wait.until(lambda d: d.find_elements(By.XPATH, "//span[contains(@class,'tree-title') and text()='preset']"))
        browser.find_elements(By.XPATH, "//span[contains(@class,'tree-title') and text()='preset']")[0].click()
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[role='columnheader'][col-id*='preset']"))
        rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "[role='row']")]
        text = "\n".join(rows)
        for name in (parent.info.run_name, "basic-s0", "legacy-s0"):
            assert name in text, (name, rows)
        presets = {cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "[role='gridcell'][col-id*='preset']")}
        assert {"basic", "legacy"} <= presets
        if os.environ.get("MYXTTS_UI_SCREENSHOT"):
            time.sleep(1)
            browser.save_screenshot(os.environ["MYXTTS_UI_SCREENSHOT"])
    finally:  # the UI and the workers it started: one process group, stopped together
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
