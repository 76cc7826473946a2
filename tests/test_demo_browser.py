import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_config
from PIL import Image

from shapetex import Translator
from shapetex.demo import DemoApp, DemoSettings, InputRejected, check_image_file
from shapetex.train import Trainer

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("demo") / "run"
    Trainer(tiny_config(out, budget=16)).run()
    return out


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares width x height but holds no pixel data: only a header-only check accepts or
    refuses it by its size; decoding it would fail."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def test_pixel_limit_is_checked_from_the_header(tmp_path):
    ok = tmp_path / "ok.png"
    Image.new("RGB", (64, 32)).save(ok)
    assert check_image_file(ok, 64 * 32) == (64, 32)
    big = _png_header_only(tmp_path / "big.png", 5000, 4000)  # 20 MP declared, 57 bytes on disk
    with pytest.raises(InputRejected, match=r"5000 x 4000 = 20,000,000 pixels; this demo accepts at most 16,000"):
        check_image_file(big, 16_000_000)
    bomb = _png_header_only(tmp_path / "bomb.png", 40_000, 40_000)  # beyond PIL's own bomb limit
    with pytest.raises(InputRejected, match="Image too large"):
        check_image_file(bomb, 16_000_000)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(InputRejected, match="not an image"):
        check_image_file(tmp_path / "text.png", 100)


def test_demo_app_translates_and_refuses(run, tmp_path):
    app = DemoApp(Translator.load(run, device="cpu"), DemoSettings(max_pixels=4096, max_samples=3), tmp_path / "o")
    src = tmp_path / "in put.png"
    Image.new("RGB", (50, 30), (200, 100, 0)).save(src)
    results, message = app.translate(str(src), samples=5, seed=2)  # more samples than allowed: capped
    assert len(results) == 3 and "3 translations of the 50 x 30 image" in message
    for path, caption in results:
        assert Image.open(path).size == (50, 30) and caption.startswith("seed 2")
        assert Path(path).name.startswith("in_put_seed2_")
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    assert "Image too large: 100 x 100" in app.check(str(tmp_path / "big.png"))
    with pytest.raises(InputRejected, match="Image too large"):
        app.translate(str(tmp_path / "big.png"), 1, 0)
    with pytest.raises(InputRejected, match="Upload an image first"):
        app.translate(None, 1, 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _browser():
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never download a driver or browser
    os.environ.setdefault("SE_AVOID_STATS", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}", "--window-size=1300,1000"]:
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # to see every request the page makes
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)


def test_demo_page_in_a_real_browser(run, tmp_path):
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver): "
                    "run .ci/install-browser.sh")
    pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
    pytest.importorskip("selenium", reason="selenium is not installed")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    rng = np.random.default_rng(0)
    ok = tmp_path / "ok.png"  # 40 x 48, a few hundred bytes
    Image.fromarray(np.kron(rng.integers(0, 255, (6, 5, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))).save(ok)
    many_pixels = tmp_path / "many_pixels.png"  # 10,000 pixels > 4,096, small file
    Image.new("RGB", (100, 100), (200, 30, 30)).save(many_pixels)
    many_bytes = tmp_path / "many_bytes.png"  # 4,096 pixels, but noise: about 12 KB > 10 KB
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(many_bytes)
    assert many_bytes.stat().st_size > 10 * 1024

    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1",
           "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115
    server = subprocess.Popen([sys.executable, "-m", "shapetex", "demo", "--checkpoint", str(run), "--device", "cpu",
                               "--port", str(port), "--max-pixels", "4096", "--max-upload-mb", str(10 / 1024)],
                              stdout=log, stderr=subprocess.STDOUT, env=env)
    driver = None
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the demo server did not start:\n{(tmp_path / 'server.log').read_text()}")
                time.sleep(0.5)
        driver = _browser()
        wait = WebDriverWait(driver, 45)
        upload = "#input-image input[type=file]"

        def status():
            return driver.find_element(By.ID, "status").text

        driver.get(url)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, upload))
        driver.find_element(By.CSS_SELECTOR, upload).send_keys(str(ok))
        wait.until(lambda d: "ready" in status())
        assert "40 x 48 image" in status()
        number = driver.find_element(By.CSS_SELECTOR, "#samples input[type=number]")
        number.clear()
        number.send_keys("3", Keys.TAB)
        seed = driver.find_element(By.CSS_SELECTOR, "#seed input")
        seed.clear()
        seed.send_keys("5", Keys.TAB)
        driver.find_element(By.ID, "translate").click()
        wait.until(lambda d: "translations of" in status())
        images = driver.find_elements(By.CSS_SELECTOR, "#outputs img")
        assert len(images) == 3 and "3 translations of the 40 x 48 image" in status()
        wait.until(lambda d: all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)
                                 for i in images))
        assert [i.get_attribute("alt") for i in images] == [f"seed 5, sample {k}" for k in range(3)]
        links = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "#downloads a")]
        assert len(links) == 3
        fetched = tmp_path / "download.png"
        fetched.write_bytes(urllib.request.urlopen(links[0], timeout=10).read())
        assert Image.open(fetched).size == (40, 48)  # the input's size

        # too many pixels: refused with the message, before and on Translate, and no outputs
        driver.get(url)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, upload))
        driver.find_element(By.CSS_SELECTOR, upload).send_keys(str(many_pixels))
        wait.until(lambda d: "Image too large" in status())
        assert "100 x 100 = 10,000 pixels; this demo accepts at most 4,096 pixels" in status()
        driver.find_element(By.ID, "translate").click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").text.count("Image too large") >= 2)  # + a toast
        assert not driver.find_elements(By.CSS_SELECTOR, "#outputs img")

        # too many bytes: Gradio refuses the upload
        driver.get(url)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, upload))
        driver.find_element(By.CSS_SELECTOR, upload).send_keys(str(many_bytes))
        wait.until(lambda d: "exceed the maximum allowed size" in d.find_element(By.TAG_NAME, "body").text)

        # nothing went anywhere but this server: no analytics, fonts or CDNs
        requests = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
        urls = {m["params"]["request"]["url"] for m in requests if m["method"] == "Network.requestWillBeSent"}
        web = {u for u in urls if u.startswith(("http:", "https:", "ws:", "wss:"))}
        assert len(web) > 5 and all(u.split("/")[2] == f"127.0.0.1:{port}" for u in web), sorted(web)
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    printed = (tmp_path / "server.log").read_text()
    assert "shapetex demo:" in printed and "share=True" not in printed  # our line, not Gradio's launch() advice
