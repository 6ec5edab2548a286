"""`air serve` in a real headless Chromium: time from upload to result for a 1024×768 photo, beside
`air restore` on the same file, and the page's screenshots.

    python benchmarks/web.py --runs 3 --out benchmarks/results/web.json --shots benchmarks/results/web

Needs the web extra, selenium and Chromium with its driver (Debian: apt-get install chromium
chromium-driver). The photo is examples/rainy_coffee.png resized to 1024×768 (Lanczos).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

from air_restore.core.io.files import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
AIR = [sys.executable, "-m", "air_restore.cli.main"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what, timeout: float = 300.0):
    end = time.time() + timeout
    while time.time() < end:
        got = what()
        if got:
            return got
        time.sleep(0.1)
    raise TimeoutError("the page did not answer in time")


def time_cli(photo: Path, work: Path, runs: int, env: dict) -> list[float]:
    """Wall time of `air restore PHOTO -o ...` as a user runs it (process start and model load included)."""
    times = []
    for i in range(runs):
        t = time.perf_counter()
        subprocess.run([*AIR, "restore", str(photo), "-o", str(work / f"cli_{i}.png"), "--device", "cpu"],
                       check=True, env=env, capture_output=True)
        times.append(time.perf_counter() - t)
    return times


def time_page(photo: Path, runs: int, env: dict, shots: Path | None) -> dict:
    """Upload → download link shown, in a fresh page each run; screenshots of the first run."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    port = _free_port()
    t0 = time.perf_counter()
    server = subprocess.Popen([*AIR, "serve", "--port", str(port), "--device", "cpu"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"

    def up():
        try:
            return urllib.request.urlopen(url, timeout=2).status == 200
        except OSError:
            return False
    opts = Options()
    opts.binary_location = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))))
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1700"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        _wait(up, 120)
        startup = time.perf_counter() - t0
        times = []
        for i in range(runs):
            driver.get(url)
            box = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#air-upload input[type=file]"))[0]
            if i == 0 and shots:
                driver.save_screenshot(str(shots / "1_empty.png"))
            t = time.perf_counter()
            box.send_keys(str(photo))
            _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#air-download a"))
            times.append(time.perf_counter() - t)
            if i == 0 and shots:
                time.sleep(1.0)  # let the images paint
                driver.save_screenshot(str(shots / "2_result.png"))
                driver.execute_script("document.getElementById('air-map').scrollIntoView()")
                time.sleep(0.5)
                driver.save_screenshot(str(shots / "3_map.png"))
    finally:
        driver.quit()
        server.terminate()
        server.wait(timeout=30)
    return {"startup_s": startup, "upload_to_result_s": times}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--shots", type=Path, default=None, help="Folder for the page's screenshots.")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "AIR_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1"}
        photo = work / "coffee_1024x768.png"
        Image.open(ROOT / "examples" / "rainy_coffee.png").convert("RGB").resize((1024, 768), Image.LANCZOS).save(photo)
        if args.shots:
            args.shots.mkdir(parents=True, exist_ok=True)
        cli = time_cli(photo, work, args.runs, env)
        page = time_page(photo, args.runs, env, args.shots)
    res = {
        "photo": "examples/rainy_coffee.png resized to 1024×768",
        "runs": args.runs,
        "threads": os.cpu_count(),
        "cli_wall_s": cli,
        "cli_wall_median_s": statistics.median(cli),
        "page_startup_s": page["startup_s"],
        "page_upload_to_result_s": page["upload_to_result_s"],
        "page_median_s": statistics.median(page["upload_to_result_s"]),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip(),
    }
    print(json.dumps(res, indent=1))
    if args.out:
        atomic_write_text(args.out, json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    main()
