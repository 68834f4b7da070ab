"""The served app: its page over plain HTTP, then in a real headless Chromium.

The first tests run the server in-process on port 0 and read what it serves
(no browser needed). The browser test then does the real thing.

Starts the installed ``bettensor-miner serve --port 0`` (its own demo
validator, folders in ``tmp_path``), opens it in Debian's Chromium through
Playwright at 390x844, and checks that demo games reach the page's terminal
and that no request leaves loopback. Skipped when Chromium or the
``playwright`` package is missing (Playwright's own browser download is never
used).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import httpx
import pytest

from app.serve import MinerServer, app_command, build_parser, is_loopback, run

CHROMIUM = Path("/usr/bin/chromium")
MINER = Path(sys.executable).with_name("bettensor-miner")
ROOT = Path(__file__).resolve().parents[1]

try:
    from playwright.sync_api import Page, Route, WebSocket, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None  # type: ignore[assignment]


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
ANSI = re.compile(r"\x1b\[[0-9;?<=>]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b.")


def demo_teams() -> set[str]:
    season = json.loads((ROOT / "assets" / "demo_season.json").read_text())
    return {team for league in season["leagues"] for team in league["teams"]}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """``bettensor-miner serve`` on a free loopback port; yields its URL."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "BETTENSOR_CONFIG": str(home / "miner.toml"),
        "BETTENSOR_LOG_DIR": str(home / "logs"),
    }
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                MINER,
                "serve",
                "--port",
                "0",
                "--data-dir",
                home / "miner",
                "--speed",
                "0",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            url = wait_for_url(server, log_path, timeout=20)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=5)


def wait_for_url(
    server: subprocess.Popen[bytes], log_path: Path, timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        found = re.search(r"serving the miner app on (http://\S+)", text)
        if found:
            return found.group(1)
        if server.poll() is not None:
            pytest.fail(f"serve exited with {server.returncode}:\n{text}")
        time.sleep(0.1)
    pytest.fail(f"serve did not start in {timeout} s:\n{log_path.read_text()}")


def terminal_text(frames: list[bytes]) -> str:
    """What the app wrote to the page's terminal, without escape sequences."""
    return ANSI.sub("", b"".join(frames).decode("utf-8", errors="replace"))


@pytest.mark.browser
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium (make system-deps)"
)
@pytest.mark.skipif(sync_playwright is None, reason="the playwright package is missing")
@pytest.mark.skipif(not MINER.exists(), reason=f"console script missing: {MINER}")
def test_phone_sized_browser_shows_games_offline(served: str, tmp_path: Path) -> None:
    """At 390x844 the page shows demo games, takes a prediction, stays on loopback."""
    requests: list[str] = []
    refused: list[str] = []
    websockets: list[str] = []
    received: list[bytes] = []
    sent: list[str] = []
    csp_errors: list[str] = []
    screenshot = tmp_path / "phone.png"  # kept for a person to look at

    def route(route: Route) -> None:
        url = route.request.url
        host = urlsplit(url).hostname or ""
        if url.startswith("data:") or host in LOOPBACK:
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    def on_websocket(ws: WebSocket) -> None:
        websockets.append(ws.url)

        def on_received(payload: str | bytes) -> None:
            if isinstance(payload, bytes):
                received.append(payload)

        def on_sent(payload: str | bytes) -> None:
            if isinstance(payload, str):
                sent.append(payload)

        ws.on("framereceived", on_received)
        ws.on("framesent", on_sent)

    assert sync_playwright is not None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            context = browser.new_context(
                viewport={"width": 390, "height": 844},
                device_scale_factor=3,
                is_mobile=True,
                has_touch=True,
            )
            context.route("**/*", route)
            page: Page = context.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.on("websocket", on_websocket)
            page.on(
                "console",
                lambda msg: (
                    csp_errors.append(msg.text)
                    if "Content Security Policy" in msg.text
                    else None
                ),
            )
            page.goto(served, wait_until="load", timeout=15_000)

            # Wait, with a deadline, until a demo team's name reaches the terminal.
            teams = demo_teams()
            deadline = time.monotonic() + 30
            shown: set[str] = set()
            while time.monotonic() < deadline and not shown:
                page.wait_for_timeout(250)
                text = terminal_text(received)
                shown = {team for team in teams if team in text}
            assert shown, f"no demo team reached the page; it showed:\n{text[-2000:]}"

            # Typing in the page drives the app: predict 25 on the first game.
            assert "accepted" not in text
            page.locator(".xterm-screen").tap()
            for key in ("Enter", "1", "2", "5"):
                page.keyboard.press(key)
                page.wait_for_timeout(150)
            page.keyboard.press("Enter")
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and "accepted" not in text:
                page.wait_for_timeout(250)
                text = terminal_text(received)
            assert "accepted" in text, f"no acceptance shown:\n{text[-2000:]}"

            body_class = page.evaluate("document.body.className")
            viewport = page.evaluate(
                "document.querySelector('meta[name=viewport]').content"
            )
            font_ready = page.evaluate(
                "document.fonts.load('16px \"Roboto Mono\"').then(f => f.length > 0)"
            )
            pixel_ratio = page.evaluate("window.devicePixelRatio")
            screen_width = page.evaluate(
                "document.querySelector('.xterm-screen').getBoundingClientRect().width"
            )
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()

    # Nothing left loopback, nothing was even attempted elsewhere.
    assert refused == []
    assert all(urlsplit(url).hostname in LOOPBACK for url in requests + websockets)
    assert websockets, "the page never opened its terminal WebSocket"
    assert csp_errors == []

    # A phone-sized page: the viewport is set, the font is ours, ~40 columns.
    assert "-first-byte" in body_class
    assert "width=device-width" in viewport
    assert font_ready is True
    sizes = [json.loads(m)[1] for m in sent if m.startswith('["resize"')]
    assert sizes, "the page never told the app its size"
    assert 30 <= sizes[-1]["width"] <= 60, sizes[-1]
    # The terminal fits the screen and renders at ratio 1 (see app/serve.py).
    assert screen_width <= 390
    assert pixel_ratio == 1


PAGE_URL = re.compile(r"""(?:href|src|url)\s*[=(]\s*["']?([^"')\s>]+)""")


async def start_server() -> tuple[asyncio.Task[None], asyncio.Event, int]:
    """The real serve server in this process on a free loopback port."""
    server = MinerServer(app_command(["--speed", "0"]), host="127.0.0.1", port=0)
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(run(server, ready=ready, stop=stop))
    port = await asyncio.wait_for(ready, timeout=10)
    return task, stop, port


async def test_page_fits_a_phone_and_names_only_local_resources() -> None:
    """The page has a viewport tag, and every URL in it is relative or loopback."""
    task, stop, port = await start_server()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            page = await http.get("/")
            assert page.status_code == 200
            text = page.text
            assert 'name="viewport"' in text and "width=device-width" in text
            assert f'data-session-websocket-url="ws://127.0.0.1:{port}/ws"' in text
            assert "default-src 'self'" in page.headers["content-security-policy"]

            urls = PAGE_URL.findall(text)
            assert urls, "expected the page to link its script, styles and fonts"
            for url in urls:
                host = urlsplit(url).hostname
                assert host is None or host in LOOPBACK, url
                if host is None and not url.startswith("data:"):
                    local = await http.get("/" + url.lstrip("/"))
                    assert local.status_code == 200, url

            # A tunnel that changes the address changes the page's URLs too.
            tunnelled = await http.get("/", headers={"Host": "127.0.0.1:9999"})
            assert "ws://127.0.0.1:9999/ws" in tunnelled.text
    finally:
        stop.set()
        await task


async def test_websocket_from_another_site_is_refused() -> None:
    """A WebSocket whose Origin is another site gets 403 and starts no app."""
    task, stop, port = await start_server()
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(
                    f"http://127.0.0.1:{port}/ws",
                    headers={"Origin": "http://evil.example"},
                )
            assert refused.value.status == 403
    finally:
        stop.set()
        await task


def test_serve_passes_app_arguments_through() -> None:
    """Arguments other than --host and --port reach ``python -m app`` quoted."""
    args, rest = build_parser().parse_known_args(
        ["--port", "0", "--speed", "0", "--data-dir", "/tmp/a b"]
    )
    assert (args.host, args.port) == ("127.0.0.1", 0)
    command = app_command(rest)
    assert command.endswith("-m app --speed 0 --data-dir '/tmp/a b'")
    assert is_loopback("127.0.0.1") and is_loopback("::1")
    assert not is_loopback("0.0.0.0")
