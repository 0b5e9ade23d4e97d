"""A run's record sheet page in the lab's NetBox speaks as the `runbook` command's sheets do:
labels, step titles, kinds and statuses in Traditional Chinese and English (each marked with
its ``lang``), every time in the department's zone (the plugin's default, Asia/Hong_Kong) with
the zone named — a signature the server holds at 23:30 UTC reads 07:30 of the next day — and
the notes of a manual confirmation and an undo in that zone too. The download keeps its English
words and shows the same local times."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from runbooks_rules.chain import genesis, make_entry
from runbooks_rules.plan import plan_hash

from runbooks.lab import netbox

if TYPE_CHECKING:
    from conftest import Lab

pytestmark = pytest.mark.lab
UI = "/plugins/runbooks/"
ZONE = "UTC+08:00 Asia/Hong_Kong"


def text(page: str) -> str:
    """A page's text: words marked with their language as they read, other tags a space,
    entities read, spaces as one."""
    unmarked = re.sub(r"</?span[^>]*>", "", page)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", unmarked)).split())


def test_a_run_sheet_page_in_chinese_and_english_with_local_times(nb: Lab) -> None:
    plan = nb.plan(target="leaf3", runbook="rack-in")
    plan.pop("hash")
    plan["params"] = {"device": "leaf3"}
    plan["hash"] = plan_hash(plan)
    change = nb.approved(plan=plan)
    run = nb.start(change).json()
    # the run two days ago, late in the evening UTC: early next morning in Hong Kong
    day = (datetime.now(UTC) - timedelta(days=2)).replace(hour=23, minute=20, second=0)
    at = [(day + timedelta(minutes=m)).isoformat() for m in range(6)]
    rack_in = {"runbook": "rack-in", "params": plan["params"]}
    step = "confirm_mounted_and_cabled"
    title = {"title": "Confirm leaf3 is mounted and cabled", "kind": "manual"}
    answer = {"confirmed": True, "confirmed_by": "olivia", "confirmed_at": at[2]}
    kinds = [
        ("run.started", None, {**nb.started(run, change)[2], **rack_in}),
        ("step.started", step, title),
        ("manual.answered", step, {**answer, "note": "rack 4 | U12"}),
        ("step.finished", step, {"status": "ok", "evidence": {}}),
        ("undo.finished", step, {}),
        ("run.finished", None, {"status": "rolled-back", "error": "a later step failed"}),
    ]
    prev, entries = genesis(run["run_id"]), []
    for seq, (kind, step, payload) in enumerate(kinds, 1):
        entry = make_entry(run["run_id"], seq, at[seq - 1], "olivia", kind, step, payload, prev)
        entries.append(entry.to_dict())
        prev = entry.hash
    resp = nb["operator"].post(f"runs/{run['id']}/entries/", {"entries": entries})
    assert resp.status_code == 201, resp.text
    # the responsible person's signature as the server holds one given at 23:30 UTC
    signed_at = day.replace(minute=30)
    values = f"{change['id']}, {run['id']}, 'responsible', {nb.user_id('operator')}"
    columns = "change_id, run_id, authority, user_id, plan_hash, note, created"
    statement = f"INSERT INTO netbox_runbooks_signature ({columns}) VALUES ({values}, "  # noqa: S608
    inserted = nb.sql(f"{statement}'{change['plan_hash']}', '', '{signed_at.isoformat()}')")
    assert inserted.returncode == 0, inserted.stderr
    next_day = (day + timedelta(days=1)).strftime("%Y-%m-%d")

    session = netbox.web_session("supervisor")
    page = session.get(f"{netbox.url()}{UI}runs/{run['id']}/", timeout=60)
    assert page.status_code == 200, page.text[:300]
    sheet = page.text[page.text.index('id="record-sheet"') :]
    shown = text(sheet)

    # the signature: the next day's 07:30, the zone named (not 23:30 of its UTC day)
    block = text(sheet[sheet.index('data-role="responsible"') :].split("</div>\n</div>")[0])
    assert f"{next_day} 07:30 ({ZONE})" in block, block
    assert "23:30" not in shown
    # both languages, each marked: labels, the step's title, its kind and the run's status
    for zh, en in [
        ("職位責任人簽字", "Responsible person"),
        ("結果", "Outcome"),
        ("時區", "Time zone"),
        ("確認 leaf3 已上架並接好線纜", "Confirm leaf3 is mounted and cabled"),
        ("人工確認", "manual"),
        ("已回退", "rolled-back"),
        ("已撤銷", "undone"),
    ]:
        assert f'<span lang="zh-Hant">{zh}</span> <span lang="en">{en}</span>' in sheet, zh
    assert "雜湊鏈" in shown and "chain verified" in shown
    # every time local: the run's, the steps', the confirmation's and the undo's notes
    assert f"{next_day} 07:20:00 / {next_day} 07:25:00" in shown
    assert f"{ZONE} (本記錄所有時間均為 every time on this sheet is in {ZONE})" in shown
    assert f"confirmed by olivia at {next_day} 07:22:00 ({ZONE}): rack 4 | U12" in shown
    assert f"undone at {next_day} 07:24:00 ({ZONE})" in shown

    # the download: English words, the same local times
    md = session.get(f"{netbox.url()}{UI}runs/{run['id']}/sheet/", params={"format": "md"})
    assert md.status_code == 200, md.text[:300]
    assert f"| Started / ended | {next_day} 07:20:00 / {next_day} 07:25:00 |" in md.text
    assert f"| Time zone | {ZONE} (every time on this sheet) |" in md.text
    assert f"olivia, {next_day} 07:30 ({ZONE})" in md.text
    assert "rack 4 \\| U12" in md.text  # a cell's pipe escaped
