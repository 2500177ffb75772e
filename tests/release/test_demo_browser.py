"""The demo page in a real headless browser: Debian's chromium, driven by Playwright.

One ``python -m blazews serve``, two tabs: the page loads, each tab sees the other's
chat message, the echo box echoes, the burst of echoes completes and the statistics
update. On failure each tab's screenshot goes to build/demo-failure-<n>.png.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.compliance.test_autobahn import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("BLAZEWS_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000


@pytest.fixture
def demo_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "blazews", "serve", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, proc)  # type: ignore[arg-type]
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err


@pytest.fixture
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def chat(page: Page, name: str, text: str) -> None:
    page.fill("#chat-name", name)
    page.fill("#chat-input", text)
    page.click("#chat-send")


def test_two_tabs_chat_echo_and_watch_the_statistics(browser: Browser, demo_url: str) -> None:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    tabs: list[Page] = []
    try:
        for _ in range(2):
            tab = context.new_page()
            tab.goto(demo_url)
            expect(tab).to_have_title("blazews demo")
            expect(tab.locator("#status")).to_have_text("connected")
            tabs.append(tab)
        one, two = tabs

        chat(one, "alice", "hello from tab one")
        chat(two, "bob", "and hello from tab two")
        for tab in tabs:
            log = tab.locator("#chat-log")
            expect(log).to_contain_text("alice:hello from tab one")
            expect(log).to_contain_text("bob:and hello from tab two")
        expect(one.locator("#chat-log")).to_contain_text("joined")

        one.fill("#echo-input", "echo <b>me</b>")  # shown as text, never as markup
        one.click("#echo-send")
        expect(one.locator("#echo-output")).to_have_text("echo: echo <b>me</b>")

        one.click("#burst")
        expect(one.locator("#burst-result")).to_contain_text("10,000 round trips in")

        # The statistics: pushed every second, drawn in the chart.
        one.wait_for_function("Number(document.body.dataset.stats) >= 3")
        expect(one.locator("#stat-connections")).to_have_text("2")
        one.wait_for_function("state.rtts.some((ms) => ms > 0)")
        rtt = float(one.locator("#stat-rtt").inner_text())
        assert 0 < rtt < TIMEOUT_MS
        # The burst shows in the server's messages per second (10,000 within 2 ticks).
        one.wait_for_function("state.mps.reduce((a, b) => a + b, 0) >= 10000")
        painted = one.evaluate(
            """() => {
                const c = document.getElementById("chart");
                const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                let n = 0;
                for (let i = 3; i < data.length; i += 4) if (data[i]) n++;
                return n;
            }"""
        )
        assert painted > 100  # pixels drawn by the lines

        two.close()
        expect(one.locator("#stat-connections")).to_have_text("1")
        expect(one.locator("#chat-log")).to_contain_text("left")
    except BaseException:
        (ROOT / "build").mkdir(exist_ok=True)
        for n, tab in enumerate(tabs, 1):
            if not tab.is_closed():
                tab.screenshot(path=str(ROOT / "build" / f"demo-failure-{n}.png"), full_page=True)
        raise
    finally:
        context.close()
