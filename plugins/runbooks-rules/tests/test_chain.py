"""The chain rules: a store's rows (payload as text) verify as the entries do; a store's
`UNGUARDED` entry is a problem in its own chain only; odd fields are edits, not crashes."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from runbooks_rules.chain import (
    STORE_CHAIN,
    UNGUARDED,
    Entry,
    canonical,
    entry_hash,
    entry_hash_of_text,
    genesis,
    make_entry,
    verify_entries,
    verify_rows,
)

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def chain(run_id: str, *payloads: dict[str, Any], kind: str = "step.finished") -> list[Entry]:
    out: list[Entry] = []
    for n, payload in enumerate(payloads, 1):
        prev = out[-1].hash if out else genesis(run_id)
        out.append(
            make_entry(run_id, n, f"2026-12-07T10:00:0{n}+00:00", "o", kind, None, payload, prev)
        )
    return out


def rows(entries: list[Entry]) -> list[tuple[Any, ...]]:
    return [
        (e.seq, e.run_id, e.ts, e.actor, e.kind, e.step, canonical(e.payload), e.prev_hash, e.hash)
        for e in entries
    ]


def test_rows_verify_as_entries_do_and_an_edit_in_either_is_named_alike() -> None:
    entries = chain("r", {"a": 1}, {"漢": ["\u2028", None]}, {"f": 0.5})
    assert verify_rows(rows(entries)) == verify_entries(entries)
    assert verify_rows(rows(entries)).ok
    edited = [entries[0], dataclasses.replace(entries[1], payload={"漢": []}), entries[2]]
    assert verify_rows(rows(edited)) == verify_entries(edited)
    assert [p.kind for p in verify_rows(rows(edited)).problems] == ["edited"]


def test_an_unguarded_entry_counts_in_the_store_chain_only() -> None:
    said = {"missing": ["entries_no_update"], "altered": [], "noticed": "2026-12-07T10:00:01"}
    store = chain(STORE_CHAIN, said, kind=UNGUARDED)
    (problem,) = verify_entries(store).problems
    assert problem.kind == "unguarded" and "entries_no_update" in problem.detail
    assert verify_rows(rows(store)) == verify_entries(store)
    assert verify_entries(chain("20261207-100000-abcdef", said, kind=UNGUARDED)).ok


def test_a_position_that_is_not_a_number_is_an_edit_not_a_crash() -> None:
    entries = chain("r", {"a": 1}, {"a": 2})
    odd = [entries[0], dataclasses.replace(entries[1], seq="2")]  # as a JSON export may hold
    assert [(p.kind, p.seq) for p in verify_entries(odd).problems] == [("edited", 0)]
    assert [(p.kind, p.seq) for p in verify_rows(rows(odd)).problems] == [("edited", 0)]


@given(
    payload=st.dictionaries(st.text(), JSON, max_size=5),
    fields=st.tuples(st.text(), st.text(), st.text(), st.text()),
    step=st.none() | st.text(),
    seq=st.integers(min_value=1, max_value=2**40),
)
def test_the_stored_text_hashes_as_the_payload_does(
    payload: dict[str, Any], fields: tuple[str, str, str, str], step: str | None, seq: int
) -> None:
    run_id, ts, actor, kind = fields
    prev = genesis(run_id)
    assert entry_hash_of_text(
        run_id, seq, ts, actor, kind, step, canonical(payload), prev
    ) == entry_hash(run_id, seq, ts, actor, kind, step, payload, prev)
