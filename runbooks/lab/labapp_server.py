"""labapp: the lab's tiny web application (the standard library only: it runs on lab hosts).

Shipped as release artifacts built by `runbooks.lab.labapp`: this file (as ``labapp.py``) and
``release.json`` (its version and the state schema it needs). It keeps its state in
``state.json`` under its data directory; ``/health`` answers 200 when the state file is
readable and of the schema the release needs, 500 with the reason otherwise (a corrupt state
file; a release needing a schema the deployment did not migrate to). Each request is logged
to its log file, ``ERROR`` for an answer of 500.

    python3 labapp.py --bind 198.18.0.31 --port 8080 --data /var/lib/labapp \
        --log /var/log/labapp/labapp.log
"""

from __future__ import annotations

import argparse
import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
log = logging.getLogger("labapp")


def release() -> dict[str, Any]:
    """This release's version and the state schema it needs."""
    data: dict[str, Any] = json.loads((HERE / "release.json").read_text(encoding="utf-8"))
    return data


def health(data_dir: Path, needs_schema: int) -> tuple[int, str]:
    """The status code of ``/health`` and why."""
    try:
        state = json.loads((data_dir / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return 500, f"state.json unreadable: {exc}"
    schema = state.get("schema") if isinstance(state, dict) else None
    if schema != needs_schema:
        return 500, f"state.json has schema {schema}, this release needs {needs_schema}"
    return 200, "ok"


class Handler(BaseHTTPRequestHandler):
    server_version = "labapp"
    data_dir = Path("/var/lib/labapp")
    info: dict[str, Any] = {}

    def do_GET(self) -> None:
        version = self.info.get("version")
        if self.path == "/health":
            code, why = health(self.data_dir, int(self.info.get("schema", 1)))
            body = {"status": "ok" if code == 200 else "error", "version": version, "why": why}
        elif self.path == "/":
            code, body = 200, {"app": "labapp", "version": version}
        else:
            code, body = 404, {"error": "not found"}
        level = logging.ERROR if code >= 500 else logging.INFO
        log.log(level, "GET %s %d %s", self.path, code, body.get("why", ""))  # before the answer
        raw = (json.dumps(body) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        """http.server's own stderr line: not wanted, each request is logged in do_GET."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", type=Path, default=Path("/var/lib/labapp"))
    parser.add_argument("--log", type=Path, default=Path("/var/log/labapp/labapp.log"))
    args = parser.parse_args(argv)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=args.log,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )
    Handler.data_dir = args.data
    Handler.info = release()
    log.info("labapp %s listening on %s:%d", Handler.info["version"], args.bind, args.port)
    ThreadingHTTPServer((args.bind, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
