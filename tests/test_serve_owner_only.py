"""`fwtui serve` reachable only by its owner (issue 23, point 5), against a real server on 127.0.0.1: without
the secret link every request is refused with HTTP 403 and no websocket opens; a websocket from another
page's Origin is refused; the link and this server's own Origin get the live viewer."""

from __future__ import annotations

import asyncio
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_runs import make_run
from trainer.observe.events import Finished

aiohttp = pytest.importorskip("aiohttp")
pytest.importorskip("textual_serve")

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    """A real `fwtui serve RUN` process: (base URL, token, port)."""
    run = make_run(tmp_path, "served", Finished(iter=2, reason="completed", seconds=3.0))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "fwtui.cli", "serve", str(run), "--port", str(port)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        found = re.search(rf"at http://127\.0\.0\.1:{port}/([A-Za-z0-9_-]{{43}})/ \(this link is the key", line)
        assert found, line
        yield f"http://127.0.0.1:{port}", found[1], port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def get(session, url: str, **kw) -> tuple[int, str]:
    deadline = time.monotonic() + 30  # the server starts in the background: retry until it listens
    while True:
        try:
            async with session.get(url, **kw) as response:
                return response.status, await response.text()
        except aiohttp.ClientConnectorError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def ws_status(session, url: str, origin: str | None, **headers: str) -> int:
    """101 when the websocket opened (and the viewer sent its first bytes), else the refusal's HTTP status."""
    if origin is not None:
        headers["Origin"] = origin
    try:
        async with session.ws_connect(url + "?width=80&height=24", headers=headers) as ws:
            message = await ws.receive(timeout=60)  # the attach viewer's first output
            assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT), message
            return 101
    except aiohttp.WSServerHandshakeError as err:
        return err.status


async def test_serve_refuses_everyone_without_the_link_and_pages_of_other_origins(served):
    base, token, port = served
    wrong = secrets.token_urlsafe(32)
    async with aiohttp.ClientSession() as session:
        assert (await get(session, base + "/"))[0] == 403  # no token: 403, nothing served
        for path in (f"/{wrong}/", "/ws", f"/{wrong}/ws", "/static/js/textual.js", f"/{token[:-1]}/"):
            status, text = await get(session, base + path)
            assert status == 403 and "needs the secret link" in text, path
        status, page = await get(session, f"{base}/{token}/")
        assert status == 200
        assert f'"ws://127.0.0.1:{port}/{token}/ws"' in page  # the page's websocket carries the token
        assert (await get(session, f"{base}/{token}/static/js/textual.js"))[0] == 200
        assert (await get(session, f"{base}/{token}/static/../../server.py"))[0] in (403, 404)
        me = f"http://127.0.0.1:{port}"
        # no websocket without the token, whatever the Origin
        assert await ws_status(session, base.replace("http", "ws") + "/ws", me) == 403
        assert await ws_status(session, base.replace("http", "ws") + f"/{wrong}/ws", me) == 403
        ws_url = base.replace("http", "ws") + f"/{token}/ws"
        # the token but another page's Origin (a web page in the owner's browser while a tunnel is up)
        for origin in ("http://evil.example", f"http://127.0.0.1:{port + 1}", "null", ""):
            assert await ws_status(session, ws_url, origin) == 403, origin
        assert await ws_status(session, ws_url, None) == 403  # a script with no Origin at all
        # a page whose name was rebound to 127.0.0.1 (DNS rebinding): its Origin matches its Host, not this machine
        rebound = f"http://evil.example:{port}"
        assert await ws_status(session, ws_url, rebound, Host=f"evil.example:{port}") == 403
        # the owner: the link and this server's own page
        assert await ws_status(session, ws_url, me) == 101
        # through `ssh -L 9000:127.0.0.1:8000`: the browser says localhost:9000 for both Host and Origin
        assert await ws_status(session, ws_url, "http://localhost:9000", Host="localhost:9000") == 101
