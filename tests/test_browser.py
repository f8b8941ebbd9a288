"""The course in a real browser: JupyterLab started as `make lab` starts it, driven by headless Chromium.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make browser-tools`` installs them as root); nothing is
downloaded at run time. Without them these tests are skipped, unless ``MLSEC_REQUIRE_BROWSER=1`` (set by
``.ci/run``), which turns the skip into a failure.

The lab gets its own settings, workspaces, runtime and kernelspec in a scratch folder, and autosave is off, so
the tests never write to the student's notebooks (checked at the end). Its kernels share the run's model cache.
"""
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from lab_process import free_port, stop

ROOT = Path(__file__).resolve().parents[1]
KERNEL, KERNEL_DISPLAY = "mlsec-lessons", "Python (mlsec-lessons)"  # as `make kernel` installs it
LESSONS = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("notebooks/*.ipynb"))
EXERCISES = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("exercises/*.ipynb"))
CHROME_FLAGS = [  # as root in a container; the background services would only hit the closed network
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1000",
]
START_S, OPEN_S, RUN_ALL_S = 120, 90, 600  # generous for a loaded 2-core machine, but bounded

pytestmark = [pytest.mark.slow, pytest.mark.timeout(RUN_ALL_S + 300)]


def find_browser():
    """Paths of Chromium and its driver, or a skip (a failure under MLSEC_REQUIRE_BROWSER=1) naming what is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromium-driver", driver)) if not path]
    if not (ROOT / ".venv" / "bin" / "jupyter").exists():
        missing.append("the make-built .venv")
    if missing:
        reason = f"the browser tests need {', '.join(missing)} (make browser-tools installs the Debian packages)"
        if os.environ.get("MLSEC_REQUIRE_BROWSER") == "1":
            pytest.fail(f"MLSEC_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return chromium, driver



LESSON_02, EX0 = "notebooks/02_adversarial_attacks.ipynb", "exercises/ex0_security_metrics.ipynb"  # run in the browser


def fingerprint():
    return {p: hashlib.sha256((ROOT / p).read_bytes()).hexdigest() for p in (LESSON_02, EX0)}


class Lab:
    """A running `make lab`: its URL, token and log."""

    def __init__(self, proc, port, token, log):
        self.proc, self.url, self.token, self.log = proc, f"http://127.0.0.1:{port}", token, log

    def api(self, path, method="GET"):
        request = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def log_tail(self, n=4000):
        return self.log.read_text(errors="replace")[-n:]

    def shutdown_kernels(self):
        for session in self.api("sessions"):
            self.api(f"sessions/{session['id']}", method="DELETE")


@pytest.fixture(scope="session")
def browser_paths():
    return find_browser()


@pytest.fixture(scope="session")
def lab(browser_paths, tmp_path_factory):
    """JupyterLab as `make lab` runs it (same target, kernel and root dir) on a free loopback port with a token."""
    home = tmp_path_factory.mktemp("lab")
    settings = home / "settings" / "@jupyterlab"
    # No "Jupyter news" prompt over the notebook, and no autosave: a run in the browser must not touch the files.
    # Windowing mode "none" attaches every cell at once: under the default ("contentVisibility") a cell far below
    # the fold renders only when the idle browser gets to it, and a long lesson took 20 s to show all its cells.
    for plugin, values in {"apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
                           "docmanager-extension/plugin": {"autosave": False},
                           "notebook-extension/tracker": {"windowingMode": "none"}}.items():
        (settings / plugin).parent.mkdir(parents=True, exist_ok=True)
        (settings / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))
    env = dict(os.environ, JUPYTER_DATA_DIR=str(home / "data"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    # The kernels inherit the run's model cache (MLSEC_CACHE_DIR, set by the repository's conftest.py): lesson
    # 02's models, trained once in this run by nbval's pass over the lesson, are loaded, not trained again.
    env.pop("MPLBACKEND", None)  # conftest.py sets Agg for the tests; a student's kernel draws inline
    port, token = free_port(), secrets.token_hex(16)
    # expose_app_in_browser: window.jupyterapp, through which a test opens the next notebook in the page it has
    # (JupyterLab's own docmanager:open, what a double-click in the file browser runs) instead of loading the
    # whole lab again for each one.
    args = f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.token={token} --LabApp.expose_app_in_browser=True"
    log = home / "lab.log"
    before = fingerprint()
    with log.open("wb") as out:
        # -o: the .venv is already installed (this test runs from it); never reinstall it halfway through a run.
        proc = subprocess.Popen(["make", "--no-print-directory", "-o", ".venv/.installed", "lab", f"LAB_ARGS={args}"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Lab(proc, port, token, log)
    try:
        deadline = time.monotonic() + START_S
        while True:
            try:
                server.api("status")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"`make lab` did not serve on port {port} within {START_S} s "
                                f"(exit code {proc.poll()}); its log ends:\n{server.log_tail()}")
                time.sleep(0.5)
        spec = json.loads((home / "data" / "kernels" / KERNEL / "kernel.json").read_text())
        assert os.path.samefile(Path(spec["argv"][0]).parent, ROOT / ".venv" / "bin"), spec["argv"]
        yield server
        server.shutdown_kernels()
    finally:
        stop(proc)
    assert fingerprint() == before, "running the course in the browser changed a notebook on disk"



@pytest.fixture(scope="session")
def driver(browser_paths, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser_paths
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROME_FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as mp:
        # Selenium's driver manager would look on the network first; the driver is given, stay offline.
        mp.setenv("SE_OFFLINE", "true")
        mp.setenv("SE_AVOID_STATS", "true")
        browser = webdriver.Chrome(service=Service(chromedriver), options=options)
    browser.set_page_load_timeout(OPEN_S)
    browser.set_script_timeout(30)
    yield browser
    browser.quit()


@pytest.fixture
def page(lab, driver):
    """The browser, with each test's notebooks closed, its kernels shut down and its console read afterwards."""
    yield driver
    if in_lab(driver, lab):
        driver.execute_async_script(CLOSE_ALL)
    lab.shutdown_kernels()
    driver.get_log("browser")  # what is left belongs to this test's page, not the next one


# --- small helpers -------------------------------------------------------------------------------------------

def wait(driver, seconds, condition, what, lab=None):
    """Wait until ``condition(driver)`` is truthy and return it; fail saying ``what`` did not happen (and how the
    ``lab``'s log ends)."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.5, ignored_exceptions=[StaleElementReferenceException]
                             ).until(condition)
    except TimeoutException:
        log = f"; the lab's log ends:\n{lab.log_tail(2000)}" if lab else ""
        pytest.fail(f"{what() if callable(what) else what} did not happen within {seconds} s{log}")


def eventually(driver, seconds, condition):
    """Whether ``condition(driver)`` becomes truthy within ``seconds`` (no failure when it does not)."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return bool(WebDriverWait(driver, seconds, poll_frequency=0.25,
                                  ignored_exceptions=[StaleElementReferenceException]).until(condition))
    except TimeoutException:
        return False


def css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


# Read in the page in one WebDriver call each: an element's .text is a round trip of its own that makes the page
# lay itself out, and the waits below poll twice a second while the kernel runs a lesson on the same two cores.
KERNEL_STATE = """const name = document.querySelector('.jp-NotebookPanel-toolbar .jp-KernelName');
const state = document.querySelector('.jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator');
return [name && name.textContent.trim(), state && state.getAttribute('data-status')];"""
CODE_PROMPTS = """return Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt'),
                  e => e.textContent.trim());"""


def kernel_state(driver):
    """The kernel name and status the notebook's toolbar shows, e.g. ("Python (mlsec-lessons)", "idle")."""
    return tuple(driver.execute_script(KERNEL_STATE))


# JupyterLab's own commands, run in the page (arguments[-1] is Selenium's callback)
# (a notebook that ran is modified: it closes without asking to save, as autosave is off and the files must not change)
CLOSE_ALL = """const done = arguments[arguments.length - 1];
for (const widget of Array.from(window.jupyterapp.shell.widgets('main'))) {
  if (widget.context) { widget.context.model.dirty = false; }
}
window.jupyterapp.commands.execute('application:close-all').then(() => done(true), e => done(String(e)));"""
OPEN = """const done = arguments[arguments.length - 1];
window.jupyterapp.commands.execute('docmanager:open', {path: arguments[0], factory: 'Notebook'})
  .then(() => done(true), e => done(String(e)));"""


def in_lab(driver, lab):
    """Whether the browser shows this lab, loaded and exposing its application."""
    return driver.current_url.startswith(lab.url) and driver.execute_script(
        "return !!(window.jupyterapp && window.jupyterapp.commands)")


def open_notebook(driver, lab, path):
    """Open ``path`` with nothing else open and wait until it shows the course kernel, started and idle.

    The first time, the lab loads with a fresh workspace (``?reset``); after that, the notebook opens in the same
    page, as a double-click in the file browser opens it, which saves loading JupyterLab once per notebook."""
    if in_lab(driver, lab):
        assert driver.execute_async_script(CLOSE_ALL) is True
        assert driver.execute_async_script(OPEN, path) is True, f"JupyterLab could not open {path}"
    else:
        driver.get(f"{lab.url}/lab/tree/{path}?reset&token={lab.token}")
    wait(driver, OPEN_S, lambda d: kernel_state(d) == (KERNEL_DISPLAY, "idle"),
         lambda: f"{path} opening with the {KERNEL_DISPLAY} kernel idle (it shows {kernel_state(driver)})", lab)
    tabs = [e.text for e in css(driver, ".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")]
    assert tabs == [Path(path).name], tabs
    assert not css(driver, ".jp-Dialog"), [e.text for e in css(driver, ".jp-Dialog")]


def code_prompts(driver):
    """The prompts of the code cells, in order: "[3]:" ran, "[*]:" queued or running, "[ ]:" not run."""
    return driver.execute_script(CODE_PROMPTS)


def wait_for_idle(driver, lab, seconds, what):
    """Wait until no cell is queued or running (no ``[*]``) and the kernel is idle, twice in a row."""
    def idle(d):
        quiet = "[*]:" not in code_prompts(d) and kernel_state(d)[1] == "idle" and all(
            s["kernel"]["execution_state"] == "idle" for s in lab.api("sessions"))
        idle.streak = idle.streak + 1 if quiet else 0
        return idle.streak >= 2

    idle.streak = 0
    wait(driver, seconds, idle, lambda: f"{what} (prompts {code_prompts(driver)})", lab)


def run_all(driver, lab, seconds=RUN_ALL_S):
    """Run > Run All Cells, as a student clicks it, and wait until every code cell has run."""
    start = time.monotonic()
    next(e for e in css(driver, ".lm-MenuBar-item") if e.text == "Run").click()
    wait(driver, 10, lambda d: css(d, '.lm-Menu-item[data-command="runmenu:run-all"]'),
         "the Run menu opening")[0].click()
    wait(driver, 30, lambda d: "[*]:" in code_prompts(d), "a cell starting to run")
    wait_for_idle(driver, lab, seconds, "running all cells")
    # A cell that raises stops the run: the cells after it keep an empty prompt.
    not_run = [i for i, p in enumerate(code_prompts(driver)) if not re.fullmatch(r"\[\d+\]:", p)]
    errors = [e.text[-2000:] for e in css(driver, '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
              if "Traceback" in e.text]
    assert not not_run and not errors, f"code cells {not_run} did not run; errors: {errors}"
    return time.monotonic() - start


# SEVERE console entries known to be harmless, each with its reason. None so far: JupyterLab 4.6 with the
# course's notebooks logs no error at all (only DEBUG lines), so every SEVERE entry fails the test.
HARMLESS = []


def console_errors(driver):
    """The SEVERE entries of the browser console since the last call, less the known harmless ones."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and not any(p.search(e["message"]) for p in HARMLESS)]


def outputs_text(driver, cell):
    return "\n".join(e.text for e in cell.find_elements("css selector", ".jp-OutputArea-output"))


# --- the tests -----------------------------------------------------------------------------------------------

def test_lesson_02_runs_and_the_eps_slider_redraws_the_figure(page, lab):
    from selenium.webdriver.common.action_chains import ActionChains

    open_notebook(page, lab, LESSON_02)
    seconds = run_all(page, lab)
    print(f"lesson 02, Run All Cells in the browser: {seconds:.1f} s")
    sliders = [s for s in css(page, ".widget-slider")
               if s.find_elements("css selector", ".widget-label") and
               s.find_element("css selector", ".widget-label").text == "eps"]
    assert len(sliders) == 1, "lesson 02 shows one eps slider"
    eps = sliders[0]
    readout = eps.find_element("css selector", ".widget-readout")
    assert readout.text == "0.10"
    interactive = eps.find_element("xpath", "ancestor::div[contains(@class, 'widget-interact')]")

    def figure(d):
        images = interactive.find_elements("css selector", ".widget-output img")
        return images[0].get_attribute("src") if len(images) == 1 else None

    cell = eps.find_element("xpath", "ancestor::div[contains(@class, 'jp-CodeCell')]")
    before = wait(page, 60, figure, lambda: "the interactive figure appearing (the widget shows "
                  f"{len(interactive.find_elements('css selector', '.widget-output img'))} images, the cell "
                  f"{len(cell.find_elements('css selector', 'img'))}; {cell.text[-3000:]!r})")
    handle = eps.find_element("css selector", ".noUi-handle")
    for _ in range(3):  # a drag made while the page still lays itself out can miss the handle: drag again
        page.execute_script("arguments[0].scrollIntoView({block: 'center'})", handle)
        track = eps.find_element("css selector", ".noUi-target").size["width"]
        ActionChains(page).drag_and_drop_by_offset(handle, track, 0).perform()  # to the right end: eps = 0.30
        if eventually(page, 5, lambda d: readout.text == "0.30"):
            break
    wait(page, 10, lambda d: readout.text == "0.30", lambda: f"the eps slider reaching 0.30 (it reads {readout.text})")
    wait(page, 120, lambda d: (figure(d) or before) != before, "the figure redrawing for eps = 0.30")
    wait_for_idle(page, lab, 120, "the redraw finishing")
    assert console_errors(page) == []


@pytest.mark.parametrize("path", LESSONS + EXERCISES)
def test_notebook_renders_with_the_course_kernel(page, lab, path):
    open_notebook(page, lab, path)
    nb = nbformat.read(ROOT / path, as_version=4)
    kinds = [c.cell_type for c in nb.cells]
    wait(page, 30, lambda d: len(css(d, ".jp-Notebook .jp-Cell")) == len(kinds),
         f"all {len(kinds)} cells of {path} rendering")
    wait(page, 30, lambda d: len(css(d, ".jp-MarkdownCell .jp-RenderedMarkdown")) == kinds.count("markdown"),
         f"the {kinds.count('markdown')} markdown cells of {path} rendering")
    pngs = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    wait(page, 30, lambda d: len(css(d, ".jp-OutputArea-output img")) == pngs,
         f"the {pngs} saved figures of {path} rendering")
    assert console_errors(page) == []


def test_ex0_grade_cell_shows_the_table(page, lab):
    open_notebook(page, lab, EX0)
    run_all(page, lab)
    nb = nbformat.read(ROOT / EX0, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "grade_cell(" in c.source and c.cell_type == "code")
    table = outputs_text(page, css(page, ".jp-Notebook .jp-Cell")[index])
    rows = re.findall(r"^\s+(PASS|FAIL)\s+(\w+)\s+(\d+)/(\d+)$", table, flags=re.M)
    total = re.search(r"^\s+total\s+(\d+)/(\d+)\s+\(\d+%\)$", table, flags=re.M)
    assert table.startswith("ex0_security_metrics: ex0_security_metrics.py"), table[:500]
    assert rows and total, table
    assert (int(total[1]), int(total[2])) == (sum(int(r[2]) for r in rows), sum(int(r[3]) for r in rows))
    assert console_errors(page) == []


def test_a_missing_browser_is_a_skip_and_under_ci_a_failure(monkeypatch):
    monkeypatch.setenv("PATH", str(ROOT / "no-such-folder"))
    monkeypatch.delenv("MLSEC_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="need chromium, chromium-driver"):
        find_browser()
    monkeypatch.setenv("MLSEC_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="MLSEC_REQUIRE_BROWSER=1 but"):
        find_browser()
