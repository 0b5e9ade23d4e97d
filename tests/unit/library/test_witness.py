"""The journal entry that witnesses a run (`runbooks.library.witness`), on the real NetBox gateway
over a fake transport: one entry per target the run changed, naming the record's head; found
before it is written (a retried write, a re-plan, a resume write nothing more); none in a plan;
taken back when the run rolls back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runbooks.config import NetBoxSettings
from runbooks.core.context import RunContext
from runbooks.core.engine import Engine
from runbooks.core.errors import VerificationError
from runbooks.core.gateway import Mode
from runbooks.core.results import Diff, RunStatus
from runbooks.core.runbook import Params
from runbooks.core.steps import change
from runbooks.core.store import RecordStore
from runbooks.gateways.netbox import NetBoxGateway
from runbooks.library.base import LibraryRunbook
from runbooks.library.witness import JournalWitness, Witnessed, journal_step, mentions, witness_text
from tests.unit.gateways.netbox_fake import TOKEN, URL, Answer, FakeNetBox, Sent

JOURNAL = "/api/extras/journal-entries/"
DEVICES = {"srv1": 7, "srv2": 8}


class NetBoxJournal:
    """NetBox's journal entries, by object: listed (filtered), created, deleted."""

    def __init__(self) -> None:
        self.fake = FakeNetBox()
        self.entries: list[dict[str, Any]] = []
        self.fake.on("GET", JOURNAL, self.listed)
        self.fake.on("POST", JOURNAL, self.created)
        self.fake.on("DELETE", JOURNAL, self.deleted)
        self.fake.on("GET", "/api/core/object-changes/", Answer(200, {"results": []}))

    def listed(self, sent: Sent) -> Answer:
        wanted = dict(sent.query)
        found = [
            e
            for e in self.entries
            if str(e["assigned_object_id"]) == wanted["assigned_object_id"]
            and e["assigned_object_type"] == wanted["assigned_object_type"]
        ]
        for entry in found:  # a detail GET of each, for its ETag (a delete is conditional)
            self.fake.on("GET", f"{JOURNAL}{entry['id']}/", Answer(200, entry, {"ETag": "e"}))
        return Answer(200, {"results": found})

    def created(self, sent: Sent) -> Answer:
        entry = {"id": 40 + len(self.entries), "display": "entry", **sent.body}
        self.entries.append(entry)
        return Answer(201, entry)

    def deleted(self, sent: Sent) -> Answer:
        gone = {item["id"] for item in sent.body}
        self.entries = [e for e in self.entries if e["id"] not in gone]
        return Answer(204)

    def on(self, name: str) -> list[str]:
        return [
            str(e["comments"]) for e in self.entries if e["assigned_object_id"] == DEVICES[name]
        ]

    def writes(self) -> list[str]:
        return [f"{s.method} {s.path}" for s in self.fake.sent if s.method != "GET"]

    def gateway(self, ctx: RunContext, key: str) -> NetBoxGateway:
        gw = NetBoxGateway(NetBoxSettings(URL, TOKEN), ctx.mode, run_id=ctx.run_id, runbook="toy")
        gw.session.mount("http://", self.fake)
        return gw


class ToyParams(Params):
    fail_after_witness: bool = False


class Toy(JournalWitness, LibraryRunbook[ToyParams]):
    """Changes a file on srv1, nothing on srv2; witnesses on both servers' devices."""

    name = "toy"
    title = "Toy"
    instruction = "0 玩具 toy instruction"
    Params = ToyParams
    journaled = ("plan_motd",)

    def witnessed(self, ctx: RunContext) -> list[Witnessed]:
        return [Witnessed("dcim.device", i, n, f"**Done** on {n}") for n, i in DEVICES.items()]

    def journal_items(self, ctx: RunContext, target: Witnessed) -> list[str]:
        changes = self.journal_changes(ctx)
        return [f"{d.target}: {d.summary}" for d in changes if mentions(d.target, target.name)]

    @change("Set the message of the day on srv1")
    def plan_motd(self, ctx: RunContext) -> list[Diff]:
        return [Diff.of_text("srv1:/etc/motd", "old\n", "new\n", "motd")]

    @plan_motd.apply
    def set_motd(self, ctx: RunContext, diffs: list[Diff]) -> None:
        """The file is a stand-in: its diff is what the witness sums up."""

    @plan_motd.verify
    def motd_set(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        return True

    @plan_motd.undo
    def restore_motd(self, ctx: RunContext, diffs: list[Diff]) -> None:
        """Likewise."""

    plan_journal_entry = journal_step("Witness the run in the servers' NetBox journal")

    @change("A later step that may fail")
    def plan_later(self, ctx: RunContext) -> list[Diff]:
        if self.p.fail_after_witness and not ctx.planning:
            raise VerificationError("injected: a later step failed")
        return []


@pytest.fixture
def netbox() -> NetBoxJournal:
    return NetBoxJournal()


def engine(tmp_path: Path, netbox: NetBoxJournal) -> Engine:
    store = RecordStore(tmp_path / "records.sqlite3")
    return Engine(store, "olivia", gateway_factories={NetBoxGateway: netbox.gateway})


def toy(**params: Any) -> Toy:
    return Toy(Toy.parse_params(params))


def test_a_run_leaves_one_entry_per_changed_target_naming_the_record_head(
    tmp_path: Path, netbox: NetBoxJournal
) -> None:
    eng = engine(tmp_path, netbox)
    result = eng.run(toy())
    assert result.status is RunStatus.SUCCEEDED, result.error
    (entry,) = netbox.on("srv1")
    assert netbox.on("srv2") == []  # nothing changed there: nothing to witness
    entries = eng.store.entries(result.run_id)
    at = next(
        i
        for i, e in enumerate(entries)
        if e.kind == "step.started" and e.step == "plan_journal_entry"
    )
    started = entries[at]
    # the head of every record entry before the witness step, as the record store has it
    assert started.prev_hash == entries[at - 1].hash
    assert f"Record head hash before this entry: `{started.prev_hash}`" in entry
    assert f"runbook `toy`, run `{result.run_id}` by olivia" in entry
    assert "**Done** on srv1" in entry and "- srv1:/etc/motd: motd" in entry
    assert netbox.writes() == [f"POST {JOURNAL}"]
    kinds = [e["kind"] for e in netbox.entries]
    assert kinds == ["info"]


def test_a_second_write_with_the_same_head_writes_nothing(
    tmp_path: Path, netbox: NetBoxJournal
) -> None:
    eng = engine(tmp_path, netbox)
    result = eng.run(toy())
    done = {s.step: s for s in result.steps}["plan_journal_entry"]
    # the step's apply again, with the diffs it recorded (a retry, a resume): found, not written
    runbook = toy()
    ctx = RunContext(Mode.RUN, result.run_id, "olivia", runbook)
    ctx.gateway_factories[NetBoxGateway] = netbox.gateway
    ctx.results = {s.step: s for s in result.steps}
    evidence = runbook.write_journal(ctx, list(done.diffs))
    assert evidence == {"journal_entries": {"srv1": 40}}
    assert runbook.journal_written(ctx, list(done.diffs))
    # and a re-plan of the step finds it in place
    assert runbook.journal_diffs(ctx) == []
    assert netbox.writes() == [f"POST {JOURNAL}"]
    assert len(netbox.on("srv1")) == 1


def test_a_plan_reads_no_journal_and_names_no_run(tmp_path: Path, netbox: NetBoxJournal) -> None:
    plan = engine(tmp_path, netbox).plan(toy())
    step = {s.step: s for s in plan.steps}["plan_journal_entry"]
    (diff,) = step.diffs
    assert diff.target == "NetBox journal of srv1" and diff.kind == "create"
    text = diff.after["comments"]
    assert "run `<the run>` by <its operator>" in text
    assert "The record's head hash is written here by the run." in text
    assert netbox.fake.sent == []  # nothing to look up: the run has no id yet


def test_a_rolled_back_run_takes_its_witness_back(tmp_path: Path, netbox: NetBoxJournal) -> None:
    eng = engine(tmp_path, netbox)
    result = eng.run(toy(fail_after_witness=True))
    assert result.status is RunStatus.ROLLED_BACK, result.error
    undone = [e.step for e in eng.store.entries(result.run_id) if e.kind == "undo.finished"]
    assert undone[0] == "plan_journal_entry"
    assert netbox.entries == []
    assert netbox.writes() == [f"POST {JOURNAL}", f"DELETE {JOURNAL}"]


def test_the_text_without_items_or_headline() -> None:
    ctx = RunContext(Mode.RUN, "r-1", "olivia", toy(), record_head=lambda: "ab12")
    text = witness_text(ctx, "", [])
    assert text.splitlines() == [
        "**0 玩具 toy instruction** — runbook `toy`, run `r-1` by olivia",
        "",
        "Record: `runbook records show r-1`. Record head hash before this entry: `ab12` "
        "(check it: `runbook records verify`).",
    ]
