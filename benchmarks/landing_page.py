"""How fast the landing page opens: start `streamlit run app.py`, wait until the server
answers its health check, then time a real browser (Debian's chromium) from navigation
until the page's title and class grid are drawn. Prints the figures of several loads.

    KMNIST_DATA_DIR=../shared/data/kmnist-mini python benchmarks/landing_page.py
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(port, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as reply:
                if reply.status == 200:
                    return time.monotonic()
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("streamlit did not answer its health check within 60 s")


def main(loads=5):
    port = free_port()
    env = dict(os.environ, KMNIST_HOME=tempfile.mkdtemp(prefix="kmnist-landing-"))
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = time.monotonic()
        answered = wait_healthy(port)
        print(f"server answered its health check {answered - started:.1f} s after start")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            timings = []
            for _ in range(loads):
                page = browser.new_page()
                began = time.monotonic()
                page.goto(f"http://127.0.0.1:{port}/")
                page.get_by_text("The ten classes").wait_for(timeout=30_000)
                page.locator("img").first.wait_for(timeout=30_000)
                timings.append(time.monotonic() - began)
                page.close()
            browser.close()
        print("landing page drawn (title + first sample image) after: "
              + ", ".join(f"{t:.2f} s" for t in timings)
              + f"  (first load {timings[0]:.2f} s, later loads median {sorted(timings[1:])[len(timings[1:]) // 2]:.2f} s)")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
