"""The generated Space as a person uses it: `python app.py` on 127.0.0.1, driven by headless Chromium (Debian's
chromium and chromedriver, through Selenium) with every host but 127.0.0.1 unreachable, so the page must render
offline. Each answer shown must equal the pipeline's; screenshots go to outputs/test-artefacts/space/ (git-ignored).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from test_space import EXAMPLES, load_app_module, save_space_model
from transformers import pipeline

from polyhead.remote_code import PIPELINE_TASK
from polyhead.space import APP_TEMPLATE, write_space


pytestmark = pytest.mark.slow
pytest.importorskip("gradio", reason="gradio is not installed: pip install 'polyhead[space]' (setup_env.sh does)")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (setup_env.sh installs it)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or ""
if not (os.path.isfile(CHROMIUM) and os.path.isfile(CHROMEDRIVER)):
    pytest.skip(
        "Debian's chromium and chromium-driver are not installed (scripts/setup_env.sh installs them as root: "
        "apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )
STARTUP_SECONDS = 120  # importing gradio and torch on a busy 2-core machine
ANSWER_SECONDS = 30
APP = load_app_module(APP_TEMPLATE)  # the template's helpers, not launched
ARTEFACTS = Path(__file__).resolve().parent.parent / "outputs" / "test-artefacts" / "space"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(space_dir: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """`python app.py` in `space_dir` on a free port; returns the process and its URL once it answers."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "app.py"], cwd=space_dir, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"app.py exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    pytest.fail(f"app.py did not answer on {url} within {STARTUP_SECONDS}s:\n{log.read_text()}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--window-size=1280,2200",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # offline: only the app is reachable
    ):  # fmt: skip
        options.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must download nothing
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return save_space_model(tmp_path_factory.mktemp("browser-model") / "model")


@pytest.fixture(scope="module")
def page(model_folder, browser, tmp_path_factory):
    """The app running on the tiny model, opened in the browser."""
    space_dir = write_space(model_folder, tmp_path_factory.mktemp("browser") / "space")
    process, url = start_app(space_dir, space_dir.parent / "app.log")
    try:
        browser.get(url)
        WebDriverWait(browser, ANSWER_SECONDS).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#submit"))
        yield browser
    finally:
        stop(process)


@pytest.fixture(scope="module")
def reference(model_folder):
    return pipeline(PIPELINE_TASK, model=str(model_folder), trust_remote_code=True)


@pytest.fixture(scope="module")
def artefacts():
    """The screenshots' folder: outputs/ is git-ignored, and CI's clone keeps it after the run."""
    folder = ARTEFACTS
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    print(f"\nSpace screenshots: {folder}")


def fill(driver, selector: str, text: str) -> None:
    box = driver.find_element(By.CSS_SELECTOR, f"{selector} textarea, {selector} input")
    box.clear()
    box.send_keys(text)


def shown_label(driver, selector: str) -> str:
    """The top label a `gr.Label` shows ("" while it shows none)."""
    found = driver.find_elements(By.CSS_SELECTOR, f"{selector} [data-testid='label-output-value']")
    return found[0].text.strip() if found else ""


def shown_text(driver, selector: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return found[0].text.strip() if found else ""


def wait_for(driver, expected: dict[str, str], read) -> dict[str, str]:
    """What the page shows for each key once it equals `expected`, or what it shows after `ANSWER_SECONDS`."""
    try:
        WebDriverWait(driver, ANSWER_SECONDS, poll_frequency=0.2).until(
            lambda d: {key: read(d, key) for key in expected} == expected
        )
    except Exception:  # a timeout: the assertion below shows the difference
        pass
    return {key: read(driver, key) for key in expected}


def top_labels(answer: dict[str, list[dict]]) -> dict[str, str]:
    """The top label of each task as the page shows it (app.py's text for a multi-label task with no label kept)."""
    return {task: items[0]["label"] if items else APP.NO_LABEL for task, items in answer.items()}


def click(driver, selector: str) -> None:
    driver.find_element(By.CSS_SELECTOR, selector).click()


def open_tab(driver, name: str) -> None:
    tab = next(b for b in driver.find_elements(By.CSS_SELECTOR, "button[role='tab']") if b.text.strip() == name)
    tab.click()


def test_text_and_pair_show_the_pipelines_answers(page, reference, artefacts):
    selectors = {task: f"#task-{i}" for i, task in enumerate(reference.model.config.tasks)}  # the page's order
    read = lambda d, task: shown_label(d, selectors[task])  # noqa: E731
    assert EXAMPLES[0] in page.page_source  # the card's widget texts are the examples
    fill(page, "#text", EXAMPLES[1])
    click(page, "#submit")
    expected = top_labels(reference(EXAMPLES[1], top_k=None))
    assert wait_for(page, expected, read) == expected
    page.save_screenshot(str(artefacts / "space-text.png"))

    fill(page, "#text", "a man is playing the guitar")
    fill(page, "#text-pair", "a person plays music")
    click(page, "#submit")
    pair = {"text": "a man is playing the guitar", "text_pair": "a person plays music"}
    expected = top_labels(reference(pair, top_k=None))
    assert wait_for(page, expected, read) == expected
    page.save_screenshot(str(artefacts / "space-pair.png"))
    fill(page, "#text-pair", "")


def test_empty_and_too_long_text_say_so_on_the_page(page, reference):
    fill(page, "#text", "   ")
    click(page, "#submit")
    status = wait_for(page, {"#status": "Error: The text is empty: type a text to classify."}, shown_text)
    assert status["#status"] == "Error: The text is empty: type a text to classify."
    limit = APP.token_limit(reference)
    fill(page, "#text", "good " * (limit + 10))
    click(page, "#submit")
    WebDriverWait(page, ANSWER_SECONDS).until(lambda d: "truncated" in shown_text(d, "#status"))
    assert f"reads only the first {limit}" in shown_text(page, "#status")
    assert "Traceback" not in page.page_source


def test_zero_shot_tab(page, reference, artefacts):
    open_tab(page, "Zero-shot")
    fill(page, "#zs-text", "i love this movie")
    fill(page, "#zs-labels", "movies, sport, money")
    click(page, "#zs-submit")
    answer = reference("i love this movie", candidate_labels=["movies", "sport", "money"])
    expected = {"#zs-label": answer["labels"][0]}
    assert wait_for(page, expected, shown_label) == expected
    page.save_screenshot(str(artefacts / "space-zero-shot.png"))


def test_batch_tab_returns_a_predictions_file_and_names_a_missing_column(page, reference, tmp_path, artefacts):
    open_tab(page, "Batch (CSV)")
    pd.DataFrame({"sentence": EXAMPLES}).to_csv(tmp_path / "no-text.csv", index=False)
    page.find_element(By.CSS_SELECTOR, "#csv input[type='file']").send_keys(str(tmp_path / "no-text.csv"))
    time.sleep(1)  # the upload finishes before the click is handled
    click(page, "#batch-submit")
    WebDriverWait(page, ANSWER_SECONDS).until(lambda d: "Error" in shown_text(d, "#batch-status"))
    assert "The CSV has no column 'text' (its columns: 'sentence')" in shown_text(page, "#batch-status")
    fill(page, "#text-column", "sentence")
    click(page, "#batch-submit")
    WebDriverWait(page, ANSWER_SECONDS).until(lambda d: "rows predicted" in shown_text(d, "#batch-status"))
    assert shown_text(page, "#batch-status").startswith(f"{len(EXAMPLES)} rows predicted")
    link = page.find_element(By.CSS_SELECTOR, "#predictions a[href]").get_attribute("href")
    assert link.startswith("http://127.0.0.1:") and "no-text-predictions.csv" in link
    with urllib.request.urlopen(link, timeout=10) as response:
        predicted = pd.read_csv(response)
    assert list(predicted["sentence"]) == EXAMPLES
    assert list(predicted["topic"]) == [answer["topic"][0]["label"] for answer in reference(EXAMPLES)]
    page.save_screenshot(str(artefacts / "space-batch.png"))
    assert "Traceback" not in page.page_source


def test_a_folder_that_is_not_a_polyhead_model_shows_why(browser, model_folder, tmp_path):
    space_dir = write_space(model_folder, tmp_path / "space")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")
    config = json.loads((space_dir / "space_config.json").read_text(encoding="utf-8"))
    config["model"] = str(tmp_path / "bert")
    (space_dir / "space_config.json").write_text(json.dumps(config), encoding="utf-8")
    process, url = start_app(space_dir, tmp_path / "app.log")
    try:
        browser.get(url)
        WebDriverWait(browser, ANSWER_SECONDS).until(lambda d: "could not be loaded" in shown_text(d, "#status"))
        assert "is not a polyhead multitask model" in shown_text(browser, "#status")
        assert "Traceback" not in browser.page_source
    finally:
        stop(process)
