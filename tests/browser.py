"""Driving the real app in Debian's chromium: start `streamlit run app.py` on a free port,
launch the browser, wait for Streamlit to settle. Shared by the end-to-end test and
scripts/screenshots.py."""

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("KMNIST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                  "--disable-component-update"]


def data_dir() -> str:
    from conftest import MINI_DIR

    return str(MINI_DIR)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_app(home, port=None, log_path=None, startup_timeout=60.0, data=None):
    """Yields the app's URL; the server (and only it) is stopped afterwards. ``data``: the
    KMNIST folder it reads (default: kmnist-mini)."""
    port = port or free_port()
    env = dict(os.environ, KMNIST_HOME=str(home), KMNIST_DATA_DIR=str(data or data_dir()),
               KMNIST_WORKER_IDLE_EXIT=os.environ.get("KMNIST_WORKER_IDLE_EXIT", "2"))
    log = open(log_path or Path(home) / "streamlit.log", "w")  # noqa: SIM115 (the server's stdout while it runs)
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                with urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not start; see {log.name}") from None
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@contextmanager
def chromium(width=1400, height=1000):
    """A page in headless Debian chromium (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def idle(page, timeout=60_000) -> None:
    """Return as soon as the app is connected and no script run is in progress."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"] [data-testid=\"stStatusWidgetRunningIcon\"]')"
        " && document.querySelector('[data-testid=\"stMain\"]')",
        timeout=timeout,
    )


def settle(page, timeout=60_000) -> None:
    """``idle``, then half a second more for a rerun the last one triggered to start."""
    idle(page, timeout)
    page.wait_for_timeout(500)


HEADINGS = {"Home": "KMNIST Explorer"}  # a page whose heading is not its sidebar title


def open_page(page, title, timeout=60_000) -> None:
    """Navigate through the sidebar like a user, then wait for the page's heading."""
    page.get_by_role("link", name=title, exact=True).first.click()
    page.get_by_role("heading", name=HEADINGS.get(title, title)).first.wait_for(timeout=timeout)
    settle(page, timeout)
