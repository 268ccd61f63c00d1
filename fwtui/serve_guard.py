"""textual-serve reachable only by its owner (issue 23, point 5): a secret link, and the websocket's Origin checked.

textual-serve has no login: on a shared machine any local account could open 127.0.0.1:PORT, and while an
`ssh -L` tunnel is up any web page in the owner's browser could open a websocket to it, press `p` and read
the dashboard. So every URL here lives under a secret path segment, `/<token>/`, printed only to the owner:

- a request whose first segment is not the token (compared in constant time) gets HTTP 403, the websocket
  included (refused before the upgrade, so no `fwtui attach` is started);
- the websocket must also come from a page of this server: its `Origin` must be the origin the browser used
  for it (`http://` + the Host header), so another site's page in the owner's browser is refused even if the
  link leaked through its history; served on a loopback address, that Host must name this machine
  (127.0.0.1, localhost, ::1, on any port: a tunnel's), so a page on a DNS-rebound name is refused too.

The page's own URLs (websocket, scripts) are built from the Host the browser used, so the link works
unchanged through `ssh -L 9000:127.0.0.1:8000` (the browser's localhost:9000).
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from textual_serve.server import Server, to_int

TOKEN_BYTES = 32
"""secrets.token_urlsafe(32): 256 random bits, 43 URL-safe characters."""
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
REFUSED = "fwtui serve: this address needs the secret link printed by `fwtui serve` to its owner"


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def origin_of(request: web.Request) -> str:
    """The origin a page served to this request has: scheme and the Host the browser asked for."""
    return f"{'https' if request.secure else 'http'}://{request.host}"


class OwnerOnlyServer(Server):
    """textual_serve.server.Server with every route under `/<token>/` and the websocket's Origin checked."""

    def __init__(self, command: str, token: str, **options: Any) -> None:
        super().__init__(command, **options)
        self.token = token

    def link(self) -> str:
        """The URL to print to the owner (the only place the token is shown)."""
        return f"{self.public_url}/{self.token}/"

    async def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates_path))
        app.add_routes([
            web.get("/{token}/", self.handle_index, name="index"),
            web.get("/{token}/ws", self.handle_websocket, name="websocket"),
            web.get("/{token}/download/{key}", self.handle_download, name="download"),
            web.get("/{token}/static/{path:.+}", self.handle_static, name="static"),
        ])
        app.on_startup.append(self.on_startup)
        app.on_shutdown.append(self.on_shutdown)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler) -> web.StreamResponse:
        first = request.path.lstrip("/").split("/", 1)[0]
        if not hmac.compare_digest(first.encode(), self.token.encode()):
            raise web.HTTPForbidden(text=REFUSED + "\n")
        if request.match_info.route.name == "websocket":
            origin = request.headers.get("Origin", "")
            rebound = self.host in LOOPBACK_NAMES and request.url.host not in LOOPBACK_NAMES
            if rebound or not hmac.compare_digest(origin.encode(), origin_of(request).encode()):
                raise web.HTTPForbidden(text=f"fwtui serve: a websocket from {origin or 'no page'} is refused; "
                                             "open the link printed by `fwtui serve`\n")
        return await handler(request)

    async def on_startup(self, app: web.Application) -> None:
        """textual-serve prints its logo and a link without the token here; `fwtui serve` prints its own."""

    async def handle_static(self, request: web.Request) -> web.StreamResponse:
        """textual-serve's scripts, fonts and CSS, under the token like everything else."""
        root = Path(self.statics_path).resolve()
        target = (root / request.match_info["path"]).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(target)

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        base = f"{origin_of(request)}/{self.token}/"
        return {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": ("wss" if request.secure else "ws") + base[base.index(":"):] + "ws",
            "config": {"static": {"url": base + "static/"}},
            "application": {"name": self.title},
        }


__all__ = ["OwnerOnlyServer", "REFUSED", "new_token", "origin_of"]
