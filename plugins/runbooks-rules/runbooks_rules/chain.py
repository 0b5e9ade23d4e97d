"""The record's hash chain: one chain per run (and per change), the same on every side.

Entry *n* of a chain carries the hash of entry *n-1*; entry 1 carries the chain's genesis, a
hash of the chain's own id. The hash covers every field of the entry, its position in the
chain included, over one canonical JSON form. So a local store and NetBox hold byte-identical
chains: the head of a run in one can be compared with the head anchored in the other, and one
run's export verifies on its own.

`verify_entries` recomputes chains and names what broke: an entry edited (its content no
longer matches its hash), deleted (a position or a link is missing), reordered (a link or
position points backwards), truncated (the last entries are gone: the expected head is not
the head), rewritten (the chain verifies but differs from an independent witness); and an
entry a record store wrote in its own chain on finding its guards (SQLite triggers) gone,
`UNGUARDED`, as unguarded, for ever.

`verify_rows` is `verify_entries` for entries as a store keeps them, the payload as its
canonical text: that text is hashed as it is, never parsed and re-serialised, which is what
makes verifying a large store fast.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any, NamedTuple

# A local record store's own chain (no run or change is named so), and the kind of entry it
# appends there when it opens and finds triggers that guard its tables missing or altered
# (recreating them): whatever was done while they were off, SQLite did not refuse it. Verify
# reports every such entry, however long ago.
STORE_CHAIN = "store"
UNGUARDED = "store.triggers_recreated"

# An entry as a store keeps it: seq, run_id, ts, actor, kind, step, payload (its canonical
# JSON text), prev_hash, hash -- the fields of `Entry`, in its order.
Row = tuple[Any, ...]


def canonical(data: Any) -> str:
    """The one JSON form that is hashed: sorted keys, no spaces, UTF-8 kept; standard JSON
    only (NaN and infinities are not JSON: `json_safe` turns them into text first).

    >>> canonical({"b": 1, "a": "漢"})
    '{"a":"漢","b":1}'
    """
    return json.dumps(
        data,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
        allow_nan=False,
    )


def json_safe(data: Any) -> Any:
    """``data`` with every number JSON cannot carry (NaN, ±infinity) as its text.

    >>> json_safe({"loss": float("nan"), "n": [1.5, float("-inf")]})
    {'loss': 'nan', 'n': [1.5, '-inf']}
    """
    if isinstance(data, float) and not math.isfinite(data):
        return str(data)
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_safe(v) for v in data]
    return data


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def genesis(chain: str) -> str:
    """What entry 1 of a chain links to: a hash of the chain's own id, so no two runs' or
    changes' chains start from the same value. It is derived, not random: a run's chain is
    the same bytes in every store that holds it (this machine's, NetBox's, an export), and
    anyone can check entry 1 without being handed a value. (Each store's own ``store`` chain
    starts from the same value in every store; it holds only what the store noted of itself.)

    >>> genesis("CHG-1") == genesis("CHG-1") != genesis("CHG-2")
    True
    """
    return digest("runbooks-genesis:" + chain)


def entry_hash(
    run_id: str,
    seq: int,
    ts: str,
    actor: str,
    kind: str,
    step: str | None,
    payload: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """The hash of one entry: every field, its position in the chain included."""
    return digest(
        canonical(
            {
                "run_id": run_id,
                "seq": seq,
                "ts": ts,
                "actor": actor,
                "kind": kind,
                "step": step,
                "payload": payload,
                "prev_hash": prev_hash,
            }
        )
    )


def entry_hash_of_text(
    run_id: str,
    seq: int,
    ts: str,
    actor: str,
    kind: str,
    step: str | None,
    payload_text: str,
    prev_hash: str,
) -> str:
    """`entry_hash` of an entry whose payload is given as its canonical JSON text: the text is
    hashed as it is (it is what `canonical` writes for the payload within the entry's own
    canonical form), so ``entry_hash_of_text(..., canonical(p), ...) == entry_hash(..., p,
    ...)`` and any other text, an edited one, hashes differently.

    >>> p = {"b": [1, "漢"], "a": None}
    >>> args = ("r", 3, "2026-01-01T00:00:00+00:00", "olivia", "step.finished", None)
    >>> entry_hash_of_text(*args, canonical(p), "0" * 64) == entry_hash(*args, p, "0" * 64)
    True
    """
    if type(seq) is not int:
        raise TypeError(f"an entry's seq is an int, not {type(seq).__name__}")
    enc = encode_basestring  # a string exactly as canonical() writes it (ensure_ascii=False)
    return digest(
        f'{{"actor":{enc(actor)},"kind":{enc(kind)},"payload":{payload_text},'
        f'"prev_hash":{enc(prev_hash)},"run_id":{enc(run_id)},"seq":{seq},'
        f'"step":{"null" if step is None else enc(step)},"ts":{enc(ts)}}}'
    )


@dataclass(frozen=True)
class Entry:
    """One record entry: ``seq`` is its position in the chain ``run_id`` (1, 2, ...)."""

    seq: int
    run_id: str
    ts: str
    actor: str
    kind: str
    step: str | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def content_hash(self) -> str:
        return entry_hash(
            self.run_id,
            self.seq,
            self.ts,
            self.actor,
            self.kind,
            self.step,
            self.payload,
            self.prev_hash,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "run_id": self.run_id,
            "ts": self.ts,
            "actor": self.actor,
            "kind": self.kind,
            "step": self.step,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entry:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def make_entry(
    run_id: str,
    seq: int,
    ts: str,
    actor: str,
    kind: str,
    step: str | None,
    payload: dict[str, Any],
    prev_hash: str,
) -> Entry:
    """A new entry with its hash; ``payload`` must already be JSON-clean."""
    return Entry(
        seq,
        run_id,
        ts,
        actor,
        kind,
        step,
        payload,
        prev_hash,
        entry_hash(run_id, seq, ts, actor, kind, step, payload, prev_hash),
    )


@dataclass(frozen=True)
class Problem:
    run_id: str
    seq: int
    kind: str  # edited | deleted | reordered | truncated | rewritten | unguarded
    detail: str


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    heads: dict[str, str] = field(default_factory=dict)  # chain -> the hash of its last entry
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def head(self) -> str:
        """The head of a one-chain report (a run's export); '' for several chains."""
        return next(iter(self.heads.values())) if len(self.heads) == 1 else ""


@dataclass
class _Cursor:
    next_seq: int
    prev: str
    seen: dict[str, int] = field(default_factory=dict)  # hash -> seq within this chain


class _Link(NamedTuple):
    """What verifying needs of one entry: its place, its links, whether its content still
    matches its hash; the kind and payload only to name an `UNGUARDED` entry."""

    run_id: str
    seq: Any  # an int, unless someone wrote something else there
    prev_hash: str
    hash: str
    intact: bool
    kind: str
    payload: Mapping[str, Any] | str


def verify_entries(
    entries: Iterable[Entry], expected_heads: Mapping[str, str] | None = None
) -> VerifyReport:
    """Recompute every chain among ``entries`` (in stored order) and name every break.

    ``expected_heads`` (chain -> hash), from an independent witness or given with an export,
    also catches entries deleted at a chain's end."""
    links = (
        _Link(e.run_id, e.seq, e.prev_hash, e.hash, e.content_hash() == e.hash, e.kind, e.payload)
        for e in entries
    )
    return _verify(links, expected_heads)


def verify_rows(
    rows: Iterable[Row], expected_heads: Mapping[str, str] | None = None
) -> VerifyReport:
    """`verify_entries` for entries as a store keeps them (`Row`: the payload as its canonical
    text, hashed as it is). A row whose fields are not of their types does not match its
    hash."""
    return _verify(_row_links(rows), expected_heads)


def _row_links(rows: Iterable[Row]) -> Iterator[_Link]:
    for seq, run_id, ts, actor, kind, step, payload, prev, digest_ in rows:
        try:
            intact = digest_ == entry_hash_of_text(
                run_id, seq, ts, actor, kind, step, payload, prev
            )
        except TypeError:  # a field of another type (a BLOB, a number, a text for seq)
            intact = False
        yield _Link(str(run_id), seq, str(prev), str(digest_), intact, str(kind), payload)


def _verify(links: Iterable[_Link], expected_heads: Mapping[str, str] | None) -> VerifyReport:
    cursors: dict[str, _Cursor] = {}
    problems: list[Problem] = []
    count = 0
    for link in links:
        count += 1
        cur = cursors.get(link.run_id)
        if cur is None:
            cur = cursors[link.run_id] = _Cursor(1, genesis(link.run_id))
        found = _check(link, cur)
        if found:
            problems.extend(found)
        if type(link.seq) is not int:
            continue  # no place in its chain: it neither moves nor links the chain on
        cur.seen[link.hash] = link.seq
        if link.seq >= cur.next_seq:  # an entry out of its place does not move the head back
            cur.next_seq = link.seq + 1
            cur.prev = link.hash
    for chain, expected in (expected_heads or {}).items():
        problems.extend(_check_head(chain, cursors.get(chain), expected))
    return VerifyReport(count, {c: cur.prev for c, cur in cursors.items()}, tuple(problems))


def _check(link: _Link, cur: _Cursor) -> list[Problem]:
    """What is wrong with one entry, given where its chain stands."""
    if type(link.seq) is not int:
        detail = f"an entry of {link.run_id} has no position: {str(link.seq)[:20]!r}"
        return [Problem(link.run_id, 0, "edited", detail)]
    if link.intact and link.seq == cur.next_seq and link.prev_hash == cur.prev:
        return [_unguarded(link)] if _says_unguarded(link) else []
    chain, seq, where = link.run_id, link.seq, f"{link.run_id} #{link.seq}"
    found = []
    if not link.intact:
        found.append(Problem(chain, seq, "edited", f"{where} does not match its hash"))
    if seq > cur.next_seq:
        detail = f"{where} follows #{cur.next_seq - 1}: the entries between are missing"
        found.append(Problem(chain, seq, "deleted", detail))
    elif seq < cur.next_seq:
        detail = f"{where} comes after #{cur.next_seq - 1}"
        found.append(Problem(chain, seq, "reordered", detail))
    elif link.prev_hash != cur.prev:
        if link.prev_hash in cur.seen:
            detail = f"{where} links to #{cur.seen[link.prev_hash]}, not #{seq - 1}"
            found.append(Problem(chain, seq, "reordered", detail))
        else:
            detail = f"the entry {where} links to is missing"
            found.append(Problem(chain, seq, "deleted", detail))
    if _says_unguarded(link):
        found.append(_unguarded(link))
    return found


def _says_unguarded(link: _Link) -> bool:
    return link.kind == UNGUARDED and link.run_id == STORE_CHAIN


def _unguarded(link: _Link) -> Problem:
    """A store's own entry saying its guards were found gone: what it says of them."""
    try:
        said = json.loads(link.payload) if isinstance(link.payload, str) else link.payload
        gone = ", ".join(str(t) for t in [*said.get("missing", []), *said.get("altered", [])])
        noticed = str(said.get("noticed", "?"))
    except (ValueError, AttributeError, TypeError):
        gone, noticed = "(unreadable)", "?"
    detail = (
        f"the store's triggers {gone} were dropped or altered outside runbooks, found so and "
        f"recreated when it was opened at {noticed}: until then its entries, heads and meta "
        "data could be changed without SQLite refusing"
    )
    return Problem(link.run_id, int(link.seq), "unguarded", detail)


def _check_head(chain: str, cur: _Cursor | None, expected: str) -> list[Problem]:
    """A chain's end against the head a witness expects."""
    if cur is None:
        return [Problem(chain, 0, "deleted", f"every entry of {chain} is missing")]
    if cur.prev == expected:
        return []
    last = cur.next_seq - 1
    if expected in cur.seen:
        detail = (
            f"{chain} goes on past its expected head (#{cur.seen[expected]}): "
            "entries were added after it"
        )
    else:
        detail = (
            f"{chain} ends at #{last}, not at its expected head {expected[:12]}…: "
            "entries at its end were deleted or rewritten"
        )
    return [Problem(chain, last, "truncated", detail)]


def compare_with_witness(
    local: Mapping[str, Sequence[str]], anchored: Mapping[str, tuple[int, str]]
) -> list[Problem]:
    """Each chain's local copy against what a witness (NetBox) anchored for it.

    ``local`` maps a chain to its hashes in order; ``anchored`` maps a chain to (length, head)
    as the witness holds it. A witness that is behind (entries not sent yet) is compared at its
    own length. A chain whose hash there differs was rewritten locally.

    >>> compare_with_witness({"r": ["a", "b"]}, {"r": (1, "a")})
    []
    >>> [p.kind for p in compare_with_witness({"r": ["x", "y"]}, {"r": (2, "b")})]
    ['rewritten']
    """
    problems: list[Problem] = []
    for chain, (length, head) in anchored.items():
        mine = local.get(chain)
        if mine is None:
            continue
        if len(mine) < length:
            detail = f"{chain} has {len(mine)} entries here but {length} in NetBox"
            problems.append(Problem(chain, len(mine), "truncated", detail))
        elif length and mine[length - 1] != head:
            detail = (
                f"{chain} was rewritten here: entry #{length} is {mine[length - 1][:12]}… "
                f"but NetBox anchored {head[:12]}…"
            )
            problems.append(Problem(chain, length, "rewritten", detail))
    return problems
