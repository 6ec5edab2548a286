"""``air serve`` driven in a real headless Chromium: upload, result, slider, corrupt upload."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image



ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "hazy_chelsea.png"
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
DRIVER = shutil.which("chromedriver")


def _need_browser():
    for mod, extra in (("gradio", 'pip install "air-restore[web]"'), ("selenium", 'pip install "air-restore[test]"')):
        try:
            __import__(mod)
        except ImportError:
            pytest.skip(f"{mod} is not installed ({extra})")
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("needs Chromium and its driver (Debian: apt-get install chromium chromium-driver; .ci/run does)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`air serve` as a user starts it, on a free loopback port, with its own empty store."""
    _need_browser()
    port = _free_port()
    env = {**os.environ, "AIR_HOME": str(tmp_path_factory.mktemp("serve_home")), "HF_HUB_OFFLINE": "1"}
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    # --max-pixels between the two examples used below: hazy_chelsea (451×300) fits, rainy_coffee (600×400) not.
    proc = subprocess.Popen([sys.executable, "-m", "air_restore.cli.main", "serve", "--port", str(port),
                             "--device", "cpu", "--max-pixels", "200000"], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"air serve did not start:\n{log.read_text()}")
            time.sleep(0.5)
    yield url, env
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


def _wait(what, timeout: float = 180.0, every: float = 0.3):
    end = time.time() + timeout
    while time.time() < end:
        got = what()
        if got:
            return got
        time.sleep(every)
    raise AssertionError("timed out waiting in the page")


def _upload(driver, path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "#air-upload input[type=file]").send_keys(str(path))


def _download_href(driver, name: str, old: str | None = None) -> str:
    """The download link for ``name`` once the page shows it (a new one when ``old`` is given)."""
    from selenium.webdriver.common.by import By

    from selenium.common.exceptions import StaleElementReferenceException

    def find():
        try:
            for a in driver.find_elements(By.CSS_SELECTOR, "#air-download a"):
                href = a.get_attribute("href") or ""
                if href.split("?")[0].endswith(name) and href != old:
                    return href
        except StaleElementReferenceException:  # the list was re-rendered while we read it: look again
            pass
        return None
    return _wait(find)


def _fetch(href: str, dest: Path) -> np.ndarray:
    dest.write_bytes(urllib.request.urlopen(href, timeout=30).read())
    return np.asarray(Image.open(dest))


@pytest.mark.slow
def test_page_restores_like_air_restore(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, env = server
    browser.get(url)
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#air-upload input[type=file]"))

    # 1. A shipped example: the download is what `air restore` writes for the same file.
    _upload(browser, EXAMPLE)
    href = _download_href(browser, "hazy_chelsea_restored.png")
    got = _fetch(href, tmp_path / "page.png")
    ref = tmp_path / "cli.png"
    subprocess.run([sys.executable, "-m", "air_restore.cli.main", "restore", str(EXAMPLE), "-o", str(ref),
                    "--device", "cpu"], check=True, env=env, capture_output=True)
    want = np.asarray(Image.open(ref))
    assert got.shape == want.shape and got.dtype == want.dtype
    assert _psnr(got, want) >= 50
    status = browser.find_element(By.ID, "air-status").text
    assert "hazy_chelsea.png" in status and "estimator" in status
    assert "restored twice" in status  # haze led the first pass (core.routing.Sequel), as `air restore --explain` says
    # The map and its legend, and the per-class shares, are on the page.
    assert browser.find_elements(By.CSS_SELECTOR, "#air-map img")
    assert "haze" in browser.find_element(By.ID, "air-shares").text

    # 2. Moving an adapter slider re-renders with those weights (as --adapters does): the output changes.
    box = browser.find_element(By.CSS_SELECTOR, "#air-w-haze input[type=number]")
    before = float(box.get_attribute("value"))
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("0" if before > 0.5 else "1.4", Keys.ENTER)
    href2 = _download_href(browser, "hazy_chelsea_restored.png", old=href)
    moved = _fetch(href2, tmp_path / "moved.png")
    assert _psnr(moved, got) < 40, "moving the haze slider did not change the output"
    assert "your weights" in browser.find_element(By.ID, "air-status").text

    # 3. A corrupt upload gives the CLI's one-line reason in the page, and the server keeps serving.
    bad = tmp_path / "broken.png"
    bad.write_bytes(EXAMPLE.read_bytes()[:300])
    _upload(browser, bad)
    text = _wait(lambda: "error: broken.png" in (t := browser.find_element(By.ID, "air-status").text) and t)
    cli = subprocess.run([sys.executable, "-m", "air_restore.cli.main", "restore", str(bad), "-o",
                          str(tmp_path / "x.png")], env=env, capture_output=True, text=True)
    assert cli.returncode == 1
    reason = cli.stderr.strip().splitlines()[0].split(": ")[-1]
    assert reason and reason in text, (reason, text)
    # Not an image, and one over the server's pixel limit: one line each, naming the file.
    text_file = tmp_path / "notes.png"
    text_file.write_text("just some text")
    _upload(browser, text_file)
    _wait(lambda: "error: notes.png: not an image file" in browser.find_element(By.ID, "air-status").text)
    _upload(browser, ROOT / "examples" / "rainy_coffee.png")
    big = _wait(lambda: "error: rainy_coffee.png" in (t := browser.find_element(By.ID, "air-status").text) and t)
    assert "too large" in big and "200,000" in big
    # ...and the server still restores.
    _upload(browser, EXAMPLE)
    _download_href(browser, "hazy_chelsea_restored.png", old=href2)


def test_serve_without_gradio_says_how_to_get_it(tmp_path):
    """`air serve` without the web extra: one line naming the install command, exit 2; nothing else
    of the CLI imports Gradio."""
    (tmp_path / "gradio.py").write_text("raise ImportError('No module named gradio')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = subprocess.run([sys.executable, "-m", "air_restore.cli.main", "serve"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and 'pip install "air-restore[web]"' in r.stderr, r.stderr
    code = "import sys, air_restore.cli.main, air_restore.registry; assert 'gradio' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
