"""NetBox over HTTP: one reused session, one-line errors, a request count, dry-run at the wire.

Every NetBox answer passes through `NetBoxHTTP.call`, which turns what can go wrong into a
`runbooks.core.errors` exception carrying NetBox's own words:

- unreachable / no answer in time → ``ConnectError`` / ``GatewayTimeout``;
- 401, or 403 about the token → ``AuthenticationError`` (bad token); other 403 → missing
  permission (``AuthenticationError`` too, naming the operation);
- 412 → ``DriftError`` (an If-Match ETag no longer matches: someone edited the object);
- other 4xx → ``RejectedError``, 5xx → ``GatewayError``, both with NetBox's ``detail``;
- an HTML page where JSON was expected (NetBox's login page answers 200) → ``AuthenticationError``.

The session itself refuses writes while planning (`GuardedSession.allow_writes` is False, fixed
when it is made), so even a pynetbox object handed out by the gateway cannot write during a
plan. A session made ``declared_only`` (the NetBox gateway's) writes only inside `permit`, which
the gateway's declared ``@writes`` methods open: in a run too, nothing writes through the
session, its pynetbox API or a raw call that the gateway did not declare as a write.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from runbooks.config import NetBoxSettings
from runbooks.core import secrets
from runbooks.core.errors import (
    AuthenticationError,
    ConnectError,
    DriftError,
    DryRunViolation,
    GatewayError,
    GatewayTimeout,
    RejectedError,
)

log = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# POSTs that change nothing: GraphQL is read-only; rendering a config template stores nothing.
# The netbox-runbooks plugin's render-config of many devices (NetBox's rendering, no write)
RENDER_CONFIGS = "/api/plugins/runbooks/render-configs/"
READ_ONLY_POSTS = ("/graphql/", "/render-config/", RENDER_CONFIGS)


@dataclass
class RequestLog:
    """What went over the wire: a count and one line per request (no headers, no bodies)."""

    count: int = 0
    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.count += 1
        self.lines.append(line)


# The sessions a declared write is under way for, in this thread (or task) only: a declared
# write in one thread does not open the session to an undeclared one in another.
_DECLARED: ContextVar[frozenset[int]] = ContextVar("netbox_declared_writes", default=frozenset())


class GuardedSession(requests.Session):
    """A requests session that counts requests and refuses writes unless `allow_writes`;
    ``declared_only``: and outside `permit` (a declared write) as well."""

    def __init__(self, allow_writes: bool, *, declared_only: bool = False) -> None:
        super().__init__()
        self._allow_writes = allow_writes
        self._declared_only = declared_only
        self.log = RequestLog()

    @property
    def allow_writes(self) -> bool:
        """Fixed when the session is made: a plan's session cannot be switched to writing."""
        return self._allow_writes

    @contextmanager
    def permit(self) -> Iterator[None]:
        """Writes allowed (if `allow_writes`) while open, in this thread only: a declared write
        of the gateway is under way. For the gateway's ``@writes`` methods; a plan's session
        refuses writes inside it too."""
        token = _DECLARED.set(_DECLARED.get() | {id(self)})
        try:
            yield
        finally:
            _DECLARED.reset(token)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        method = (request.method or "GET").upper()
        path = urlsplit(request.url or "").path
        if method not in READ_METHODS and not path.endswith(READ_ONLY_POSTS):
            if not self._allow_writes:
                raise DryRunViolation(
                    f"NetBox {method} {path} refused: planning never writes",
                    gateway="NetBoxGateway",
                    method=method,
                )
            if self._declared_only and id(self) not in _DECLARED.get():
                raise DryRunViolation(
                    f"NetBox {method} {path} refused: not a declared write of the gateway "
                    "(write through its @writes methods)",
                    gateway="NetBoxGateway",
                    method=method,
                )
        started = time.monotonic()
        try:
            response = super().send(request, **kwargs)
        finally:
            self.log.add(f"{method} {path}")
        log.debug(
            "%s %s -> %s in %.0f ms (request %s)",
            method,
            path,
            response.status_code,
            (time.monotonic() - started) * 1000,
            response.headers.get("X-Request-ID", "-"),
        )
        return response


@dataclass(frozen=True)
class Reply:
    """A NetBox answer: decoded body, its status, ETag and X-Request-ID."""

    status: int
    data: Any
    etag: str | None
    request_id: str | None
    text: str = ""


class NetBoxHTTP:
    """Calls NetBox's REST and GraphQL APIs through one session and maps failures to errors."""

    def __init__(
        self,
        settings: NetBoxSettings,
        *,
        allow_writes: bool,
        timeout: float = 30.0,
        session: GuardedSession | None = None,
        declared_only: bool = False,
    ) -> None:
        if not settings.token:
            raise AuthenticationError("no NetBox token: set RUNBOOKS_NETBOX_TOKEN")
        if session is not None and session.allow_writes and not allow_writes:
            raise DryRunViolation(
                "a NetBox session that writes was given for a plan: planning never writes",
                gateway="NetBoxGateway",
                method="__init__",
            )
        secrets.register(settings.token)
        self.settings = settings
        self.timeout = timeout
        self.session = session or GuardedSession(allow_writes, declared_only=declared_only)
        self.session.headers.update(
            {"Authorization": settings.authorization, "Accept": "application/json"}
        )

    @property
    def request_count(self) -> int:
        return self.session.log.count

    def close(self) -> None:
        self.session.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        accept_text: bool = False,
        what: str = "",
    ) -> Reply:
        """One request; ``what`` names the operation in error messages (e.g. "render-config")."""
        what = what or f"{method} {path}"
        hdrs = dict(headers or {})
        if accept_text:
            hdrs["Accept"] = "text/plain"
        try:
            response = self.session.request(
                method,
                self.settings.url + path,
                params=params,
                json=body,
                headers=hdrs,
                timeout=self.timeout,
            )
        except requests.Timeout as exc:
            raise GatewayTimeout(
                f"NetBox at {self.settings.url} did not answer {what} in {self.timeout:g} s"
            ) from exc
        except requests.ConnectionError as exc:
            raise ConnectError(
                f"NetBox at {self.settings.url} is unreachable ({_reason(exc)})"
            ) from exc
        return self._check(response, what, accept_text)

    def _check(self, response: requests.Response, what: str, accept_text: bool) -> Reply:
        status = response.status_code
        ctype = response.headers.get("Content-Type", "")
        request_id = response.headers.get("X-Request-ID")
        if status < 400 and "html" in ctype:
            page = "its login page" if "/login" in (response.url or "") else "an HTML page"
            raise AuthenticationError(
                f"NetBox answered {what} with {page} instead of "
                f"{'text' if accept_text else 'JSON'}: the token was not sent or not accepted, "
                "or the URL is not NetBox's API"
            )
        if status == 204:
            return Reply(status, None, response.headers.get("ETag"), request_id)
        detail = secrets.mask_text(_detail(response))  # NetBox might echo what it was sent
        if status == 401 or (status == 403 and ("token" in detail or "credentials" in detail)):
            raise AuthenticationError(f"NetBox refused the token for {what} ({status}: {detail})")
        if status == 403:
            hint = (
                " (render-config needs a write-enabled token, though it changes nothing)"
                if "render-config" in what
                else ""
            )
            raise AuthenticationError(
                f"NetBox denied {what}: the token lacks permission ({detail}){hint}"
            )
        if status == 412:
            raise DriftError(
                f"NetBox refused {what}: the object changed since the plan "
                f"(its ETag is now {response.headers.get('ETag', '?')})",
                current_etag=response.headers.get("ETag"),
            )
        if status >= 400:
            raise status_error(what, status, detail)
        if accept_text:
            return Reply(status, None, response.headers.get("ETag"), request_id, response.text)
        if "json" not in ctype:
            raise GatewayError(
                f"NetBox answered {what} with {ctype or 'no content type'} instead of JSON"
            )
        try:
            data = response.json()
        except ValueError as exc:
            raise GatewayError(f"NetBox answered {what} with invalid JSON") from exc
        return Reply(status, data, response.headers.get("ETag"), request_id)

    def graphql(self, query: str, variables: Mapping[str, Any], what: str) -> dict[str, Any]:
        """One GraphQL query; GraphQL errors (200 with ``errors``) become RejectedError."""
        reply = self.call(
            "POST", "/graphql/", body={"query": query, "variables": variables}, what=what
        )
        data = reply.data if isinstance(reply.data, dict) else {}
        if data.get("errors"):
            first = data["errors"][0]
            message = first.get("message", str(first)) if isinstance(first, dict) else str(first)
            raise RejectedError(f"NetBox GraphQL refused {what}: {message}")
        result = data.get("data")
        if not isinstance(result, dict):
            raise GatewayError(f"NetBox GraphQL answered {what} without data")
        return result


def _reason(exc: requests.ConnectionError) -> str:
    text = str(exc)
    for known, said in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "name not known"),
        ("No route to host", "no route to host"),
        ("RemoteDisconnected", "it closed the connection without an answer"),
    ):
        if known in text:
            return said
    return "connection failed"


def status_error(what: str, status: int, detail: str) -> GatewayError:
    """The error of NetBox's answer ``status`` (400 or more; the 401, 403 and 412 that
    `NetBoxHTTP._check` names first aside): NetBox failed it (5xx) or rejected it."""
    if status >= 500:
        return GatewayError(f"NetBox failed {what} ({status}: {detail})", status=status)
    return RejectedError(f"NetBox rejected {what} ({status}: {detail})", status=status)


_ERROR_DETAIL = re.compile(
    r"ErrorDetail\(string=('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"), code=[^)]*\)"
)


def _said_as_text(line: str) -> str | None:
    """The sentence of an error NetBox answered as text (render-config with ``Accept:
    text/plain`` answers a refusal as a Python dict's text: ``{'error': '...'}``).

    >>> _said_as_text("{'error': 'No config template found for this device.'}")
    'No config template found for this device.'
    >>> _said_as_text("{'detail': ErrorDetail(string='No Device matches the given query.', "
    ...               "code='not_found')}")
    'No Device matches the given query.'
    >>> _said_as_text("hostname r1") is None
    True
    """
    if not line.startswith("{") or len(line) > 2000:
        return None
    # DRF's errors print as ErrorDetail(string='...', code='...'): the string is the sentence
    line = _ERROR_DETAIL.sub(r"\1", line)
    try:
        said = ast.literal_eval(line)
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
        return None  # not a literal: the caller keeps the line as it is
    if isinstance(said, dict):
        for key in ("error", "detail"):
            if isinstance(said.get(key), str):
                return str(said[key])
    return None


def first_line(text: str, fallback: str = "no detail") -> str:
    """A text's first line, at most 200 characters (NetBox's explanation, on one line).

    >>> first_line("UndefinedError: 'x' is undefined\\n  Line: 3")
    "UndefinedError: 'x' is undefined"
    """
    first = text.strip().splitlines()[:1]
    return first[0][:200] if first and first[0].strip() else fallback


def _text_detail(response: requests.Response) -> str:
    """The explanation of an answer that is not JSON: its first line, unless HTML."""
    line = first_line(response.text, "")
    said = _said_as_text(line) if line else None
    if said:
        return said
    return line if line and "<" not in line else response.reason or "no detail"


def _detail(response: requests.Response) -> str:
    """NetBox's own explanation, on one line: ``detail``, field errors or the first line."""
    try:
        data = response.json()
    except ValueError:
        return _text_detail(response)
    if isinstance(data, dict):
        if "detail" in data:
            extra = data.get("errors")
            return str(data["detail"]) + (f" {json.dumps(extra)[:300]}" if extra else "")
        if isinstance(data.get("error"), str):  # render-config's refusals
            return str(data["error"])
        return json.dumps(data)[:300]
    if isinstance(data, list):
        return json.dumps([d for d in data if d])[:300]
    return str(data)[:300]
