"""The linear-regression notebook run the way a user runs it: in Jupyter Notebook, in a real browser.

A Jupyter Notebook server (Debian's python3-notebook) serves a copy of notebooks/ on 127.0.0.1; headless
Chromium, driven through chromium-driver by Selenium (Debian's chromium, chromium-driver, python3-selenium:
`make deps` installs them), opens 01_linear_regression.ipynb, picks Cell > Run All in the page's menu and waits
for every cell. The page must then show the plots and the coefficient table, and no cell an error. Screenshots
of the page and of the first plot go to build/browser/. The server works on a copy, so the notebooks in the
repository are never rewritten (Jupyter autosaves what it runs), and on its own config and runtime folders.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
NOTEBOOK = "01_linear_regression.ipynb"
SCREENSHOTS = os.path.join(ROOT, "build", "browser")
RUN_ALL_TIMEOUT_S = 300  # a hang guard: the notebook takes seconds
TOKEN = "xgrad-browser-test"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("jupyter")
    work = home / "notebooks"
    shutil.copytree(os.path.join(ROOT, "notebooks"), work, ignore=shutil.ignore_patterns("*.npz", "*.onnx"))
    port = _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"))
    cmd = [sys.executable, "-m", "notebook", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--port-retries=0", f"--NotebookApp.token={TOKEN}", f"--notebook-dir={work}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")  # Jupyter refuses root otherwise; CI runs as root
    log = open(home / "server.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.close()
                pytest.fail("Jupyter Notebook did not start:\n" + (home / "server.log").read_text(), pytrace=False)
            time.sleep(0.2)
    yield url, work
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,4000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


def _execution_counts(driver):
    """Each code cell's prompt as shown: None for "In [ ]:", "*" while queued or running, else the count."""
    prompts = driver.execute_script(
        "return Array.from(document.querySelectorAll('.code_cell .input_prompt')).map(e => e.textContent);")
    counts = []
    for prompt in prompts:
        match = re.fullmatch(r"In \[\s*(\S*)\s*\]:", " ".join(prompt.replace("\xa0", " ").split()))
        assert match, f"unexpected prompt {prompt!r}"
        value = match.group(1)
        counts.append(int(value) if value.isdigit() else (value or None))
    return counts


def test_run_all_in_the_browser_shows_plots_and_table(server, browser):
    url, work = server
    browser.get(f"{url}/notebooks/{NOTEBOOK}?token={TOKEN}")
    wait = WebDriverWait(browser, 120)
    # The page is up once its kernel (the one the notebook names) is connected and idle.
    wait.until(lambda d: d.execute_script(
        "return !!(window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel && "
        "Jupyter.notebook.kernel.is_connected() && !Jupyter.notebook.kernel_busy);"))
    assert browser.execute_script("return Jupyter.notebook.kernel.name;") == "xgrad"
    counts = _execution_counts(browser)
    assert counts and all(c is None for c in counts), f"the copy should start unexecuted, got {counts}"

    # Cell > Run All, through the menu as a user clicks it.
    wait.until(expected_conditions.element_to_be_clickable((By.ID, "celllink"))).click()
    wait.until(expected_conditions.element_to_be_clickable((By.ID, "run_all_cells"))).click()
    start = time.monotonic()
    WebDriverWait(browser, RUN_ALL_TIMEOUT_S, poll_frequency=0.5).until(
        lambda d: all(isinstance(c, int) for c in _execution_counts(d))
        and not d.execute_script("return Jupyter.notebook.kernel_busy;"))
    seconds = time.monotonic() - start
    os.makedirs(SCREENSHOTS, exist_ok=True)
    browser.save_screenshot(os.path.join(SCREENSHOTS, "01_linear_regression_page.png"))

    numbers = _execution_counts(browser)
    assert numbers == list(range(1, len(numbers) + 1)), f"cells ran out of order or more than once: {numbers}"
    errors = browser.find_elements(By.CSS_SELECTOR, ".output_error")
    assert not errors, "a cell shows an error:\n" + "\n".join(e.text for e in errors)

    plots = browser.find_elements(By.CSS_SELECTOR, ".output_png img")
    assert len(plots) >= 3, f"expected the loss curves, the coefficients and the test-set plot, got {len(plots)} images"
    for img in plots:  # decoded by the browser, not just present
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth;", img) > 100
    browser.execute_script("arguments[0].scrollIntoView();", plots[0])
    plots[0].screenshot(os.path.join(SCREENSHOTS, "01_linear_regression_plot.png"))

    text = "\n".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".output_stdout"))
    table = [line.split() for line in text.splitlines() if line.split()[:1] in (["bmi"], ["intercept"], ["sklearn"])]
    assert [row[0] for row in table] == ["sklearn", "bmi", "intercept"], f"no coefficient table in the page:\n{text}"
    bmi = [float(v) for v in table[1][1:]]
    assert len(bmi) == 4 and max(bmi) - min(bmi) < 1.0, f"the fits disagree on bmi: {table[1]}"
    assert "all checks passed" in text
    print(f"Run All in Chromium: {seconds:.1f} s; screenshots in {SCREENSHOTS}")
