"""The MLflow UI as a person sees it: a real sweep, `python -m analysis.ui` on 127.0.0.1, headless Chromium.
Each run's outcome, learning rate, model size and seed must show in the runs table as MLflow opens it.

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


# What a run's name says once it ends (runner/lifecycle.py): outcome · preset · size · lr · seed.
STABLE, DIVERGED = "stable · basic · tiny · lr 0.001 · s0", "diverged · basic · tiny · lr 1 · s0"
# Where a name's text ends and where its cell ends, in page pixels: a name cut short ends past its cell.
EXTENT = """const range = document.createRange(); range.selectNodeContents(arguments[0]);
return [range.getBoundingClientRect().right, arguments[0].closest("[role='gridcell']").getBoundingClientRect().right];"""


def test_the_runs_table_shows_each_runs_outcome_lr_size_and_seed_without_configuring_columns(tmp_path, small_corpus,
                                                                                            browser):
    # basic at lr 1e-3 learns in 20 steps; at lr 1.0 it diverges within them (as in tests/test_frontier.py).
    sweep = run(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "+preset=basic", "optim.lr=1e-3,1.0",
                 "seed=0", "experiment=browser", "trainer.steps=20", "trainer.validate_every=10", "data.subset=null",
                 "trainer.synthesize=false", *base_args(tmp_path, small_corpus)])
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    _, runs = runs_of(tmp_path, "browser")
    parent = next(r for r in runs if r.data.tags.get("sweep") == "true")
    children = {r.info.run_name: r.data.tags for r in runs if r is not parent}
    assert set(children) == {STABLE, DIVERGED}, sorted(children)
    assert parent.info.run_name == "sweep browser · 2 jobs · 1 stable, 1 diverged"
    # Each run's description is its result in one line; the parent's says where the report is.
    assert children[DIVERGED]["mlflow.note.content"].startswith("diverged after ")
    assert f"diverged at step {children[DIVERGED]['diverged_at_step']}" in children[DIVERGED]["mlflow.note.content"]
    assert children[STABLE]["mlflow.note.content"].startswith("stable after 20 steps · best validation ")
    assert parent.data.tags["mlflow.note.content"] == (f"report: {tmp_path / 'reports' / 'browser' / 'report.md'} · "
                                                       f"artifact report/report.md of this run")

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "analysis.ui", "--tracking-uri",
                               f"sqlite:///{tmp_path / 'mlflow.db'}", "--port", str(port)], cwd=PROJECT_ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        url = server.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/") and "workflowType=machine_learning" in url
        assert "viewStateShareKey=" in url
        _wait_healthy(f"http://127.0.0.1:{port}", server)
        browser.get(url)
        wait = WebDriverWait(browser, 60)
        # The runs table (not the GenAI overview) with the sweep's parent; its children are folded under it.
        wait.until(lambda d: parent.info.run_name in d.find_element(By.TAG_NAME, "body").text)
        for close in browser.find_elements(By.CSS_SELECTOR, "button[aria-label='Close']"):
            if close.is_displayed():  # the assistant panel takes a third of the page from the table
                close.click()
        browser.find_element(By.CSS_SELECTOR, "button[data-component-id*='runnamecellrenderer']").click()
        wait.until(lambda d: DIVERGED in d.find_element(By.TAG_NAME, "body").text)
        assert not browser.find_elements(By.CSS_SELECTOR, "[role='columnheader'][col-id*='tags.']")  # no tag column
        for name in (parent.info.run_name, STABLE, DIVERGED):
            shown = next(e for e in browser.find_elements(By.XPATH, f"//*[text()='{name}']") if e.is_displayed())
            text_ends, cell_ends = browser.execute_script(EXTENT, shown)
            assert text_ends <= cell_ends, f"{name!r} is cut short: its text ends at {text_ends} px, its cell at {cell_ends}"
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
