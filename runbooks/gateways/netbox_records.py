"""A run's record in NetBox: mirrored from the local store as it is written, read back for the
team, compared with the local copy.

The local store stays the write-ahead record: every entry is fsync'd there before the engine
moves on, so a crash loses nothing and a step costs no NetBox round trip. `RecordMirror` posts
each granted run's new entries to NetBox from a background thread, in order and in batches;
the server checks every link and recomputes every hash, so NetBox's copy is the same chain, byte
for byte, and NetBox anchors the run's head. `flush` waits until NetBox has everything (the end
of a run); `RecordMirror.push` sends what an earlier process could not.

`NetBoxRecords` reads runs, entries and sign-offs from NetBox (what a reviewer or supervisor on
another machine sees) and `anchored_heads` gives what NetBox holds for `records verify`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbooks.core.errors import (
    AuthenticationError,
    ConnectError,
    GatewayError,
    RunbookError,
    StoreError,
)
from runbooks.core.store import Entry, RecordStore
from runbooks.gateways.netbox_plugin import PluginAPI, find_one

log = logging.getLogger(__name__)

BATCH = 200  # entries per request (a step's few entries usually go in one)


@dataclass
class _Mirrored:
    key: int  # NetBox's id of the run
    url: str  # the run's page in NetBox
    sent: int = 0  # entries NetBox holds
    head: str = ""
    error: RunbookError | None = None
    retry_at: float = 0.0


class RecordMirror:
    """Posts granted runs' entries to NetBox in the background, in order."""

    def __init__(self, api: PluginAPI, store_path: Path, retry_s: float = 2.0) -> None:
        self.api = api
        self.store_path = store_path
        self.retry_s = retry_s
        self._runs: dict[str, _Mirrored] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the engine's side: register a run, wake on each entry ---------------------------------
    def track(self, run_id: str, key: int, sent: int = 0, head: str = "") -> None:
        url = f"{self.api.settings.url}/plugins/runbooks/runs/{key}/"
        with self._lock:
            self._runs[run_id] = _Mirrored(key, url, sent, head)
        self._start()
        self._wake.set()

    def tracks(self, run_id: str) -> bool:
        return run_id in self._runs

    def observe(self, entry: Entry) -> None:
        """A store observer: an entry of a mirrored run was written."""
        if entry.run_id in self._runs:
            self._wake.set()

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="record-mirror", daemon=True)
            self._thread.start()

    # -- the poster ------------------------------------------------------------------------------
    def _loop(self) -> None:
        with RecordStore(self.store_path) as reader:  # its own connection: SQLite is per thread
            while not self._stop.is_set():
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                pending = True
                while pending and not self._stop.is_set():
                    pending = any([self._push_one(reader, r) for r in list(self._runs)])
                with self._idle:
                    self._idle.notify_all()

    def _push_one(self, reader: RecordStore, run_id: str) -> bool:
        """Send one batch of ``run_id``'s unsent entries; True when more may follow."""
        mirrored = self._runs[run_id]
        if mirrored.error is not None or time.monotonic() < mirrored.retry_at:
            return False
        batch = reader.entries(run_id, after=mirrored.sent)[:BATCH]
        if not batch:
            return False
        try:
            answer = self.api.post(
                f"runs/{mirrored.key}/entries/", {"entries": [e.to_dict() for e in batch]}
            )
        except Exception as exc:  # whatever it is, the thread goes on and flush hears of it
            return self._failed(run_id, mirrored, reader, exc)
        with self._lock:
            mirrored.sent, mirrored.head = int(answer["length"]), str(answer["head"])
        return True

    def _failed(
        self, run_id: str, mirrored: _Mirrored, reader: RecordStore, exc: Exception
    ) -> bool:
        """What a failed send means; True when NetBox turns out to hold the entries already."""
        if isinstance(exc, AuthenticationError):  # the token was revoked: retrying cannot help
            mirrored.error = exc
        elif isinstance(exc, ConnectError | GatewayError):  # away, timed out, 5xx: again soon
            log.warning("record of %s not sent to NetBox yet: %s", run_id, exc)
            mirrored.retry_at = time.monotonic() + self.retry_s
        elif isinstance(exc, RunbookError):  # refused (403/409/400): unless already there
            if self._caught_up(run_id, mirrored, reader):
                return True
            log.error("NetBox refused the record of %s: %s", run_id, exc)
            mirrored.error = exc
        else:  # a bug must not kill the thread and leave flush waiting
            log.error("sending the record of %s to NetBox failed", run_id, exc_info=exc)
            mirrored.error = StoreError(f"{type(exc).__name__}: {exc}")
        return False

    def _caught_up(self, run_id: str, mirrored: _Mirrored, reader: RecordStore) -> bool:
        """After a refusal: does NetBox already hold these entries (sent by a process that
        died before it heard the answer)? Then continue after them."""
        try:
            run = self.api.get(f"runs/{mirrored.key}/")
        except RunbookError:
            return False
        length, head = int(run.get("length") or 0), str(run.get("head") or "")
        local = reader.entries(run_id, after=length - 1)[:1] if length else []
        if length > mirrored.sent and local and local[0].hash == head:
            with self._lock:
                mirrored.sent, mirrored.head = length, head
            return True
        return False

    # -- waiting for NetBox -----------------------------------------------------------------------
    def pending(self, run_id: str) -> int:
        """Entries of ``run_id`` NetBox does not hold yet."""
        with RecordStore(self.store_path) as reader:
            return len(reader.entries(run_id, after=self._runs[run_id].sent))

    def flush(self, run_id: str, timeout: float = 60.0) -> _Mirrored:
        """Wait until NetBox holds every entry of the run; raise what NetBox refused, or say
        how to send the rest later when it stays away."""
        mirrored = self._runs[run_id]
        deadline = time.monotonic() + timeout
        while True:
            if mirrored.error is not None:
                raise StoreError(
                    f"NetBox refused the record of {run_id}: {mirrored.error}; the local store "
                    "keeps it (runbook records verify)"
                )
            left = self.pending(run_id)
            if left == 0:
                return mirrored
            if time.monotonic() > deadline:
                raise ConnectError(
                    f"{left} entries of {run_id} are not in NetBox yet (kept in the local "
                    f"store): send them with `runbook records push {run_id}`"
                )
            mirrored.retry_at = 0.0
            self._wake.set()
            with self._idle:
                self._idle.wait(timeout=0.5)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class NetBoxRecords:
    """Runs and their records as NetBox holds them."""

    def __init__(self, api: PluginAPI) -> None:
        self.api = api

    def run(self, run_id: str) -> dict[str, Any]:
        """A run's summary (``length``, ``head``, ``signatures`` …) by id or unique prefix."""
        return find_one(self.api, "runs/", "run_id", run_id, "run")

    def runs(self, runbook: str | None = None, text: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"ordering": "-started"}
        if runbook:
            params["runbook"] = runbook
        if text:
            params["q"] = text
        return [
            {
                "run_id": r["run_id"],
                "started": str(r.get("started") or ""),
                "actor": r.get("operator") or "",
                "runbook": r.get("runbook") or "",
                "targets": list(r.get("targets") or []),
                "status": r.get("status") or "running",
                "entries": int(r.get("length") or 0),
                "change": (r.get("change") or {}).get("name"),
                "url": r.get("display_url", ""),
            }
            for r in self.api.get_all("runs/", **params)
        ]

    def entries(self, key: int) -> list[Entry]:
        return self._chain(f"runs/{key}/entries/")

    def change_entries(self, change_id: str) -> list[Entry]:
        """A change's own chain, written by the server: planned, signed, refused, ran …"""
        change = find_one(self.api, "changes/", "name", change_id, "change")
        return self._chain(f"changes/{change['id']}/entries/")

    def _chain(self, path: str) -> list[Entry]:
        rows = self.api.get_all(path)
        return [Entry.from_dict(r) for r in sorted(rows, key=lambda r: int(r["seq"]))]

    def verify(self, key: int) -> dict[str, Any]:
        return dict(self.api.get(f"runs/{key}/verify/"))

    def anchored_heads(self, run_ids: Iterable[str]) -> dict[str, tuple[int, str]]:
        """(length, head) NetBox holds for each of these runs that it knows."""
        wanted = sorted(set(run_ids))
        out: dict[str, tuple[int, str]] = {}
        for start in range(0, len(wanted), 100):
            chunk = ",".join(wanted[start : start + 100])
            for r in self.api.get_all("runs/", run_id__in=chunk):
                out[str(r["run_id"])] = (int(r.get("length") or 0), str(r.get("head") or ""))
        return out

    def authorities(self, run: dict[str, Any]) -> dict[str, list[str]]:
        """Who held each authority for the run, as NetBox recorded it (not as the run's own
        record says): the preparer and the operator handled it, the change's signers
        reviewed and approved it."""
        change = run.get("change") or {}
        if not change.get("id"):
            return {"handle": [str(run.get("operator") or "")]}
        detail = self.api.get(f"changes/{change['id']}/")
        held: dict[str, list[str]] = {"handle": [str(detail.get("preparer") or "")]}
        held["handle"].append(str(run.get("operator") or ""))
        for sig in detail.get("signatures") or []:
            if sig.get("authority") in ("review", "approve", "emergency"):
                held.setdefault(str(sig["authority"]), []).append(str(sig["user"]))
        return held

    @staticmethod
    def signatures(run: dict[str, Any]) -> dict[str, dict[str, str]]:
        """The record's sign-offs as the sheet shows them (role -> actor, ts, note)."""
        return {
            str(s["authority"]): {
                "actor": str(s["user"]),
                "ts": str(s.get("created", "")),
                "note": str(s.get("note", "")),
            }
            for s in run.get("signatures") or []
            if s.get("authority") in ("responsible", "supervisor")
        }
