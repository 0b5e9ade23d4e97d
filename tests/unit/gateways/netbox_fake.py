"""A fake NetBox for unit tests: a requests transport adapter answering from a route table.

Nothing leaves the process: the adapter is mounted on the gateway's own session and answers
``(method, path)`` with recorded status, JSON (or text) and headers; every request is kept.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from requests.adapters import BaseAdapter

from runbooks.config import NetBoxSettings
from runbooks.core.gateway import Mode
from runbooks.gateways.netbox import NetBoxGateway

URL = "http://netbox.invalid"
TOKEN = f"nbt_{secrets.token_hex(6)}.{secrets.token_hex(16)}"  # generated, never a literal


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None
    content_type: str = "application/json"


@dataclass
class Sent:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: Any


Route = Answer | Callable[[Sent], Answer] | Exception


class FakeNetBox(BaseAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[tuple[str, str], list[Route]] = {}
        self.sent: list[Sent] = []
        self.request_ids = 0

    def on(self, method: str, path: str, *answers: Route) -> FakeNetBox:
        """Answer ``method path`` with these, in turn (the last one repeats)."""
        self.routes[(method, path)] = list(answers)
        return self

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        parts = urlsplit(request.url or "")
        raw = request.body
        body = json.loads(raw) if raw else None
        sent = Sent(
            str(request.method), parts.path, parse_qsl(parts.query), dict(request.headers), body
        )
        self.sent.append(sent)
        queue = self.routes.get((sent.method, sent.path))
        if not queue:
            raise AssertionError(f"unexpected request {sent.method} {sent.path}")
        route = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(route, Exception):
            raise route
        answer = route(sent) if callable(route) else route
        return self._response(request, answer)

    def _response(self, request: requests.PreparedRequest, answer: Answer) -> requests.Response:
        self.request_ids += 1
        response = requests.Response()
        response.status_code = answer.status
        response.url = str(request.url)
        response.request = request
        text = answer.text if answer.text is not None else json.dumps(answer.body)
        response._content = text.encode()
        response.headers.update(
            {
                "Content-Type": answer.content_type,
                "X-Request-ID": f"req-{self.request_ids}",
                **answer.headers,
            }
        )
        response.reason = "fake"
        return response

    def close(self) -> None:
        pass


def fake_gateway(mode: Mode, run_id: str = "run-7") -> tuple[NetBoxGateway, FakeNetBox]:
    gw = NetBoxGateway(NetBoxSettings(URL, TOKEN), mode, run_id=run_id, runbook="unit")
    fake = FakeNetBox()
    gw.session.mount("http://", fake)
    return gw, fake
