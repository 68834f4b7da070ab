"""``bettensor-miner serve``: the same app in a browser, on a desktop or a phone.

Entry point: ``main(argv) -> int`` (``app/__main__.py`` calls it with the
arguments after ``serve``). ``--host`` (default 127.0.0.1) and ``--port``
(default 8000; 0 picks a free port) are read here; every other argument is
handed unchanged to ``python -m app``, which runs once per browser tab.

The server is textual-serve's, with three changes made here:

- the page is our own and loads nothing from another host: textual-serve's
  template pulls a web font from Google, ours declares the same font from the
  files textual-serve ships (``/static/fonts``), so the app works offline;
- the page fits a phone: a viewport meta tag, the dynamic viewport height,
  a 16 px font (about 40 columns on a 390 px wide phone; ``?fontsize=N``
  changes it), and the terminal drawn at a pixel ratio of 1, because its
  canvas renderer magnifies the screen on high-density displays;
- URLs in the page are relative to the request, so the page works through an
  SSH tunnel or a LAN address without configuration, and a WebSocket whose
  ``Origin`` names another site is refused: a web page open in the same
  browser cannot drive the miner.

Serving binds loopback by default; ``docs/serve.md`` explains how to reach it
from a phone safely.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import ipaddress
import logging
import shlex
import signal
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from textual_serve.server import Server, to_int

log = logging.getLogger("app.serve")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_FONT_SIZE = 16

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<meta name="color-scheme" content="dark">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="static/css/xterm.css">
<style>
@font-face {{
  font-family: "Roboto Mono";
  src: url("static/fonts/RobotoMono-VariableFont_wght.ttf") format("truetype");
  font-weight: 100 700;
  font-style: normal;
}}
@font-face {{
  font-family: "Roboto Mono";
  src: url("static/fonts/RobotoMono-Italic-VariableFont_wght.ttf") format("truetype");
  font-weight: 100 700;
  font-style: italic;
}}
html, body {{
  margin: 0;
  height: 100%;
  background: #0c181f;
  color: #e8eef2;
  font-family: "Roboto Mono", monospace;
  -webkit-text-size-adjust: 100%;
  text-size-adjust: 100%;
}}
body .textual-terminal {{
  width: 100vw;
  height: 100vh;
  height: 100dvh;
  opacity: 0;
}}
body.-first-byte .textual-terminal {{ opacity: 1; }}
.notice {{
  position: fixed;
  inset: 0;
  display: flex;
  flex-direction: column;
  align-items: center;
  justify-content: center;
  gap: 1rem;
  font-size: 1rem;
  text-align: center;
  padding: 1rem;
}}
body.-first-byte .starting, .ended {{ display: none; }}
body.-closed .ended {{ display: flex; background: #0c181f; }}
.notice button {{
  font: inherit;
  padding: 0.75rem 1.5rem;
  border: 0;
  color: #fff;
  background: #1f6f8b;
}}
#start {{ display: none; }}
</style>
<script>
// textual-serve's terminal (xterm.js, canvas renderer) draws glyphs scaled by
// devicePixelRatio into a canvas sized for a ratio of 1, so on a phone (ratio
// 2 or 3) the screen shows a magnified corner of the app. Rendering at ratio
// 1 keeps the layout right; text is a little softer on high-density screens.
Object.defineProperty(window, "devicePixelRatio", {{
  get: () => 1,
  configurable: true,
}});
</script>
<script src="static/js/textual.js"></script>
</head>
<body>
<div class="notice starting">{title}: starting…</div>
<div class="notice ended">
  <div>Session ended.</div>
  <button type="button" onclick="window.location.reload()">Restart</button>
</div>
<button type="button" id="start" hidden>Start</button>
<div id="terminal" class="textual-terminal"
     data-session-websocket-url="{websocket_url}"
     data-font-size="{font_size}"></div>
</body>
</html>
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bettensor-miner serve",
        description=(
            "Serve the miner app to a web browser (desktop or phone). Other "
            "arguments are passed to the app, which starts once per browser tab."
        ),
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to listen on (default: %(default)s, this machine only)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port to listen on; 0 picks a free one (default: %(default)s)",
    )
    return parser


def app_command(app_args: Sequence[str]) -> str:
    """The shell command textual-serve runs for each browser tab."""
    return shlex.join([sys.executable, "-m", "app", *app_args])


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same_origin(request: web.Request) -> bool:
    """Whether a WebSocket request comes from our own page (or no page at all).

    Browsers send ``Origin`` on every WebSocket handshake; a page from another
    site would name that site. Clients that are not browsers send none.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()


class MinerServer(Server):
    """textual-serve's server with an offline, phone-sized, same-origin page."""

    def __init__(self, command: str, host: str, port: int) -> None:
        super().__init__(command, host=host, port=port, title="Bettensor Miner")

    def initialize_logging(self) -> None:
        """Leave logging to `main` (textual-serve would install its own handler)."""

    async def on_startup(self, app: web.Application) -> None:
        """Say nothing here; `run` logs the address once it is known."""

    async def handle_index(self, request: web.Request) -> web.Response:
        font_size = to_int(request.query.get("fontsize", ""), DEFAULT_FONT_SIZE)
        font_size = min(max(font_size, 8), 40)
        scheme = "wss" if _is_https(request) else "ws"
        websocket_origin = f"{scheme}://{request.host}"
        page = _PAGE.format(
            title=html.escape(self.title),
            websocket_url=html.escape(f"{websocket_origin}/ws"),
            font_size=font_size,
        )
        return web.Response(
            text=page,
            content_type="text/html",
            headers={
                "Cache-Control": "no-store",
                # The page may load only what this server serves.
                "Content-Security-Policy": (
                    f"default-src 'self'; connect-src 'self' {websocket_origin}; "
                    "img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                    "script-src 'self' 'unsafe-inline'; font-src 'self'"
                ),
            },
        )

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        if not same_origin(request):
            log.warning(
                "refused a browser session from another site: %s",
                request.headers.get("Origin"),
            )
            raise web.HTTPForbidden(text="cross-site sessions are refused")
        log.info("browser session opened from %s", request.remote)
        try:
            return await super().handle_websocket(request)
        finally:
            log.info("browser session closed from %s", request.remote)


def _is_https(request: web.Request) -> bool:
    forwarded = request.headers.get("X-Forwarded-Proto", "")
    return request.secure or forwarded.lower() == "https"


async def run(
    server: MinerServer,
    *,
    ready: asyncio.Future[int] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set, or until SIGINT or SIGTERM when none is given.

    ``ready`` gets the port once the server listens.
    """
    runner = web.AppRunner(await server._make_app(), handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, server.host, server.port)
        await site.start()
        port = _bound_port(runner, server.port)
        display_host = f"[{server.host}]" if ":" in server.host else server.host
        log.info("serving the miner app on http://%s:%d/", display_host, port)
        if not is_loopback(server.host):
            log.warning(
                "listening on %s: anyone who can reach this port can use the "
                "miner's hotkey (see docs/serve.md)",
                server.host,
            )
        if ready is not None and not ready.done():
            ready.set_result(port)

        if stop is not None:
            await stop.wait()
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
    finally:
        await runner.cleanup()
        log.info("server stopped")


def _bound_port(runner: web.AppRunner, asked: int) -> int:
    """The port actually listened on (``asked`` unless it was 0)."""
    addresses: list[Any] = list(runner.addresses)
    if addresses:
        return int(addresses[0][1])
    return asked


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``[--host H] [--port P] [app arguments...]`` and serve; exit code."""
    parser = build_parser()
    args, app_args = parser.parse_known_args(
        list(sys.argv[1:] if argv is None else argv)
    )
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0..65535, not {args.port}")
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # One line per page load is noise next to the session lines below.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server = MinerServer(app_command(app_args), host=args.host, port=args.port)
    try:
        asyncio.run(run(server))
    except OSError as exc:
        print(f"bettensor-miner serve: {exc}", file=sys.stderr)
        return 1
    return 0
