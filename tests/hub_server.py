"""A hub on 127.0.0.1 for the fetch tests: it answers the endpoints huggingface_hub calls, as the hub does.

- GET  /api/datasets/{repo}/revision/{rev}        -> {"id", "sha"} (X-Error-Code RepoNotFound / RevisionNotFound)
- GET  /api/datasets/{repo}/tree/{rev}/{folder}   -> [{"type": "file", "path", "size", "oid", "lfs": {"oid",
                                                      "size", "pointerSize"}}, {"type": "directory", ...}]
                                                     (X-Error-Code EntryNotFound for no such folder)
- HEAD /datasets/{repo}/resolve/{rev}/{path}       -> ETag / X-Linked-Etag (sha256), X-Linked-Size, X-Repo-Commit
- GET  the same, honouring `Range: bytes=N-` with 206 and Content-Range.

Faults on demand: `cut[path] = n` sends n bytes of the file's next GET, then drops the connection;
`corrupt.add(path)` serves bytes whose sha256 is not the one published. `requests` records what was asked.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]]) -> None:
        self.repos = repos
        """repo id -> {path in repo: content}."""
        self.cut: dict[str, int] = {}
        self.corrupt: set[str] = set()
        self.requests: list[tuple[str, str, str | None]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                hub.handle(self, head=True)

            def do_GET(self) -> None:
                hub.handle(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- answers -------------------------------------------------------------------------------------------
    def handle(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        path = urlparse(h.path).path
        self.requests.append(("HEAD" if head else "GET", path, h.headers.get("Range")))
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["api", "datasets"] and len(parts) >= 6:
            repo, verb, rev, rest = "/".join(parts[2:4]), parts[4], parts[5], "/".join(parts[6:])
            if repo not in self.repos:
                return self.error(h, 404, "RepoNotFound")
            if rev not in ("main", COMMIT):
                return self.error(h, 404, "RevisionNotFound")
            if verb == "revision":
                return self.json(h, {"id": repo, "sha": COMMIT, "siblings": [{"rfilename": p} for p in self.repos[repo]]})
            if verb == "tree":
                return self.tree(h, repo, rest)
        if parts[:1] == ["datasets"] and len(parts) >= 6 and parts[3] == "resolve":
            repo, rev, file = "/".join(parts[1:3]), parts[4], "/".join(parts[5:])
            if repo not in self.repos:
                return self.error(h, 404, "RepoNotFound")
            if file not in self.repos[repo]:
                return self.error(h, 404, "EntryNotFound")
            return self.resolve(h, file, self.repos[repo][file], head)
        return self.error(h, 404, "EntryNotFound")

    def tree(self, h, repo: str, folder: str) -> None:
        files = self.repos[repo]
        prefix = folder.strip("/") + "/" if folder else ""
        inside = [p for p in files if p.startswith(prefix)]
        if not inside:
            return self.error(h, 404, "EntryNotFound")
        entries, folders = [], set()
        for p in sorted(inside):
            for i in range(len(prefix.split("/")) if prefix else 1, len(p.split("/"))):
                folders.add("/".join(p.split("/")[:i]))
            data = files[p]
            sha = hashlib.sha256(data).hexdigest()
            entries.append({"type": "file", "path": p, "size": len(data), "oid": hashlib.sha1(data).hexdigest(),
                            "lfs": {"oid": sha, "size": len(data), "pointerSize": 134}})
        entries += [{"type": "directory", "path": d, "oid": "0" * 40} for d in sorted(folders) if d.startswith(prefix)]
        self.json(h, entries)

    def resolve(self, h, file: str, data: bytes, head: bool) -> None:
        sha = hashlib.sha256(data).hexdigest()
        if file in self.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start = 0
        ranged = h.headers.get("Range")
        if ranged and not head:
            start = int(ranged.split("=")[1].split("-")[0])
        body = data[start:]
        h.send_response(206 if start else 200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("ETag", f'"{sha}"')
        h.send_header("X-Linked-Etag", f'"{sha}"')
        h.send_header("X-Linked-Size", str(len(data)))
        h.send_header("X-Repo-Commit", COMMIT)
        h.send_header("Accept-Ranges", "bytes")
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        if head:
            return
        cut = self.cut.pop(file, None)
        if cut is not None:
            h.wfile.write(body[:cut])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(2)  # the peer sees the body end early: a cut connection
            return
        h.wfile.write(body)

    def json(self, h, payload) -> None:
        body = json.dumps(payload).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def error(self, h, status: int, code: str) -> None:
        body = json.dumps({"error": code}).encode()
        h.send_response(status)
        h.send_header("X-Error-Code", code)
        h.send_header("X-Error-Message", code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
