"""The journal entry that witnesses a run, one shape for every runbook: on each of the run's
targets in NetBox, what the run changed there and the head hash its record had reached, so
the record store can be checked against an independent witness (``runbook records verify``).

A runbook mixes in `JournalWitness`, names the change steps the entry sums up (``journaled``)
and the objects it witnesses on (`JournalWitness.witnessed`), and ends with the change step
`journal_step` makes, whose four parts are the mixin's::

    plan_journal_entry = journal_step("Witness the run in the NetBox journal of {device}",
                                      targets="{device}")

Each entry names its run (`marker`): the gateway finds it before it writes, so a retried or
resumed run leaves one entry per target, and its undo removes exactly that entry. A run that
changed nothing on a target writes nothing there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runbooks.core.errors import InventoryError
from runbooks.core.results import Diff
from runbooks.core.steps import ChangeStep, Targets, change
from runbooks.library.base import netbox

if TYPE_CHECKING:
    from runbooks.core.context import RunContext
    from runbooks.gateways.netbox import NetBoxGateway


@dataclass(frozen=True)
class Witnessed:
    """An object whose NetBox journal witnesses the run; ``obj_id`` None: the run creates it
    (a plan's PC). ``headline`` opens the entry (e.g. "Handed over to …")."""

    obj_type: str
    obj_id: int | None
    name: str
    headline: str = ""


def marker(ctx: RunContext) -> str:
    """What names the run in its entries (and finds them again)."""
    return f"runbook `{ctx.runbook.name}`, run `{ctx.run_id}`"


def witness_text(ctx: RunContext, headline: str, items: Iterable[str]) -> str:
    """The entry: who ran what, what it changed, and the record's head before the entry."""
    runbook = ctx.runbook
    head = ctx.record_head()  # "" in a plan: the run writes the head it has reached
    witness = (
        f"Record head hash before this entry: `{head}` (check it: `runbook records verify`)."
        if head
        else "The record's head hash is written here by the run."
    )
    # a plan names no run and no person: who plans (or re-plans to review) must not change it
    run_id, actor = ("<the run>", "<its operator>") if ctx.planning else (ctx.run_id, ctx.actor)
    lines = [f"**{runbook.instruction}** — runbook `{runbook.name}`, run `{run_id}` by {actor}", ""]
    if headline:
        lines += [headline, ""]
    bullets = [f"- {item}" for item in items]
    if bullets:
        lines += [*bullets, ""]
    lines.append(f"Record: `runbook records show {run_id}`. {witness}")
    return "\n".join(lines)


def mentions(text: str, name: str) -> bool:
    """Does ``text`` (a diff's target) name ``name`` as a whole word (web7, not web70)?

    >>> mentions("web7:/etc/motd", "web7"), mentions("web70:/etc/motd", "web7")
    (True, False)
    """
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", text) is not None


def write_entries(nb: NetBoxGateway, diffs: Iterable[Diff]) -> dict[str, Any]:
    """Write planned journal diffs (`NetBoxGateway.plan_journal`), one entry at a time."""
    written: dict[str, Any] = {}
    for diff in diffs:
        after = diff.after
        if after.get("object_id") is None:
            raise InventoryError(f"NetBox: no {after['object']} to write its journal on")
        entry = nb.journal(
            after["object_type"],
            int(after["object_id"]),
            after["comments"],
            after["kind"],
            marker=after.get("marker"),
        )
        written[str(after["object"])] = entry.get("id")
    return {"journal_entries": written}


class JournalWitness:
    """The witness step's parts (see the module). Subclasses set ``journaled`` and override
    `witnessed`; `journal_items` shapes the text."""

    # the change steps the entry sums up, in order
    journaled: tuple[str, ...] = ()
    journal_kind: str = "info"

    def witnessed(self, ctx: RunContext) -> list[Witnessed]:
        raise NotImplementedError(f"{type(self).__name__} names no object to witness on")

    def journal_changes(self, ctx: RunContext) -> list[Diff]:
        """What the run changed, from its record: a resumed run writes what an uninterrupted
        one would."""
        return [
            d
            for name in self.journaled
            if (result := ctx.results.get(name)) is not None
            for d in result.diffs
            if not d.empty
        ]

    def journal_items(self, ctx: RunContext, target: Witnessed) -> list[str]:
        """The lines of ``target``'s entry: by default every change, on every target."""
        return [f"{d.target}: {d.summary}" for d in self.journal_changes(ctx)]

    def journal_diffs(self, ctx: RunContext) -> list[Diff]:
        """One entry per target the run changed something on, unless the run's is there."""
        nb, diffs = netbox(ctx), []
        for target in self.witnessed(ctx):
            items = self.journal_items(ctx, target)
            if not items:
                continue
            diff = nb.plan_journal(
                target.obj_type,
                target.obj_id,
                target.name,
                witness_text(ctx, target.headline, items),
                self.journal_kind,
                marker=None if ctx.planning else marker(ctx),
                summary="journal entry witnessing this run",
            )
            if diff is not None:
                diffs.append(diff)
        return diffs

    def write_journal(self, ctx: RunContext, diffs: list[Diff]) -> dict[str, Any]:
        return write_entries(netbox(ctx), diffs)

    def journal_written(self, ctx: RunContext, diffs: list[Diff]) -> bool:
        nb = netbox(ctx)
        return all(
            d.after.get("object_id") is not None
            and nb.journal_entry(d.after["object_type"], int(d.after["object_id"]), marker(ctx))
            for d in diffs
        )

    def remove_journal(self, ctx: RunContext, diffs: list[Diff]) -> None:
        """An undone run's witness goes: what it witnessed no longer holds."""
        nb = netbox(ctx)
        for d in diffs:
            if d.after.get("object_id") is not None:  # else nothing was written
                nb.remove_journal(d.after["object_type"], int(d.after["object_id"]), marker(ctx))


class HostJournalWitness(JournalWitness):
    """`JournalWitness` for runbooks working on hosts: each host's entry lists only what the
    run changed on that host (its announcement, its files and packages)."""

    def journal_items(self, ctx: RunContext, target: Witnessed) -> list[str]:
        return [
            f"{d.target}: {d.summary}"
            for d in self.journal_changes(ctx)
            if mentions(d.target, target.name)
        ]


def journal_step(title: str, *, targets: Targets = None) -> ChangeStep:
    """The witness step (named ``plan_journal_entry`` in the record): plan, apply, verify and
    undo are `JournalWitness`'s. Assign it where the step goes in the runbook's order."""

    def plan_journal_entry(self: JournalWitness, ctx: RunContext) -> list[Diff]:
        return self.journal_diffs(ctx)

    def write_journal_entry(
        self: JournalWitness, ctx: RunContext, diffs: list[Diff]
    ) -> dict[str, Any]:
        return self.write_journal(ctx, diffs)

    def journal_entry_written(self: JournalWitness, ctx: RunContext, diffs: list[Diff]) -> bool:
        return self.journal_written(ctx, diffs)

    def remove_journal_entry(self: JournalWitness, ctx: RunContext, diffs: list[Diff]) -> None:
        self.remove_journal(ctx, diffs)  # an undone run is not witnessed as done

    step = change(title, targets=targets)(plan_journal_entry)
    return step.apply(write_journal_entry).verify(journal_entry_written).undo(remove_journal_entry)
