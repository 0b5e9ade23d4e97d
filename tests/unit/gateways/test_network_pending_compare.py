"""A compare never disturbs a commit waiting for its confirmation.

NAPALM's EOS driver keeps a commit made with ``revert_in`` as its open config session: its
next load reuses that session and its discard aborts it, so a compare on the same driver
object (load, compare, discard) would put the box back (napalm/eos/eos.py: _load_config,
commit_config, discard_config, confirm_commit). Tested on NAPALM's real EOSDriver and
pyeapi's Node, only the eAPI transport faked (`network_fake.FakeEapi`, a box that keeps its
configuration sessions as EOS does)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from napalm.eos.eos import EOSDriver

from runbooks.core.errors import LockedError, UnsupportedError
from runbooks.core.gateway import Mode
from runbooks.gateways.network import DeviceTarget, NetworkGateway
from runbooks.library.rack_steps import restore_device
from tests.unit.gateways.network_fake import (
    CREDS,
    EosBox,
    FakeEapi,
    RecordingDriver,
    fake_drivers,
    fake_gateway,
)

__all__ = ["fake_drivers"]  # the fixture, used by name

RUNNING = "hostname leaf1\ninterface Ethernet1\n   no switchport\n"
CANDIDATE = RUNNING + "router bgp 65001\n   neighbor 198.18.1.0 remote-as 65101\n"
TRANSPORT = f"{FakeEapi.__module__}.{FakeEapi.__name__}"


@pytest.fixture
def box() -> Iterator[EosBox]:
    FakeEapi.box = EosBox(RUNNING)
    FakeEapi.opened = 0
    yield FakeEapi.box


def eos_gateway(mode: Mode = Mode.RUN) -> NetworkGateway:
    target = DeviceTarget("leaf1", "198.18.0.11", "arista_eos", "eos", {"transport": TRANSPORT})
    return NetworkGateway(mode, target, CREDS, "run-7")


def test_the_fake_is_napalms_eos_driver_over_pyeapi(box: EosBox) -> None:
    gw = eos_gateway()
    assert "\n+router bgp 65001\n" in gw.compare(CANDIDATE)
    assert isinstance(gw._device, EOSDriver)
    assert box.sessions == {} and box.running == _lines(RUNNING)  # the compare left nothing


def test_a_compare_leaves_the_pending_eos_commit_pending_then_confirm_confirms_it(
    box: EosBox,
) -> None:
    gw = eos_gateway()
    committed = _lines(CANDIDATE)
    assert "\n+router bgp 65001\n" in gw.commit(CANDIDATE, revert_in=300)
    assert box.running == committed and len(box.pending()) == 1
    session = gw._device.config_session
    assert box.pending() == [session]

    assert gw.compare(CANDIDATE) == ""  # in place: the check the rack runbooks make
    assert gw.compare(RUNNING) != ""  # and again, on the same second connection
    assert box.pending() == [session], "the compare aborted the pending commit"
    assert box.running == committed
    assert gw.has_pending_commit()
    assert gw.logins == 2 and FakeEapi.opened == 2  # one more login, while it pends

    gw.confirm()  # on the driver object holding the session
    assert box.pending() == [] and box.running == committed
    assert f"configure session {session} commit" in box.sent
    assert not gw.has_pending_commit()
    assert gw.compare(CANDIDATE) == "" and gw.logins == 2  # back on the first connection
    gw.close()
    assert box.sessions.get(session, {}).get("state") in (None, "completed")
    assert box.running == committed


def test_rollback_cancels_the_pending_commit_after_a_compare(box: EosBox) -> None:
    gw = eos_gateway()
    gw.commit(CANDIDATE, revert_in=300)
    assert gw.compare(CANDIDATE) == ""
    gw.rollback()
    assert box.pending() == [] and box.running == _lines(RUNNING)
    assert gw.compare(RUNNING) == ""
    gw.close()


def test_without_a_pending_commit_a_compare_needs_no_second_login(box: EosBox) -> None:
    gw = eos_gateway()
    gw.commit(CANDIDATE)  # no revert_in: nothing pends
    assert gw.compare(CANDIDATE) == "" and gw.compare(RUNNING) != ""
    assert gw.logins == 1 and FakeEapi.opened == 1
    gw.close()


def test_any_driver_compares_on_a_second_driver_object_while_its_commit_pends(
    fake_drivers: type[RecordingDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the driver: after a commit with revert_in, compares go to a second driver
    object opened with the same credentials and options; confirm and rollback stay on the
    first, and close the second."""
    acted_on: list[object] = []

    def record(driver: object) -> None:
        acted_on.append(driver)

    monkeypatch.setattr(RecordingDriver, "confirm_commit", record)
    monkeypatch.setattr(RecordingDriver, "rollback", record)
    gw = fake_gateway(Mode.RUN)
    for settle in (gw.confirm, gw.rollback):
        gw.commit("hostname r1\nhostname r2\n", revert_in=60)
        first, given = gw._device, dict(RecordingDriver.given)
        RecordingDriver.seen = []
        gw.compare("hostname r1\n")
        side = gw._side_device
        assert side is not None and side is not first and RecordingDriver.given == given
        assert [name for name, _ in RecordingDriver.seen][:2] == ["open", "load_replace_candidate"]
        RecordingDriver.seen = []
        settle()
        assert acted_on[-1] is first
        assert gw._side_device is None and RecordingDriver.seen == [("close", None)]
    assert gw.logins == 3  # the first connection, and one more each time a commit pended
    gw.commit("hostname r1\nhostname r3\n", revert_in=60)
    gw.compare("hostname r1\n")
    RecordingDriver.seen = []
    gw.close()
    assert RecordingDriver.seen == [("close", None), ("close", None)]
    assert gw._side_device is None and gw._device is None


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_a_commit_refused_before_anything_pends_keeps_compares_on_the_connection(
    fake_drivers: type[RecordingDriver],
) -> None:
    """A driver whose commit_config refuses revert_in (NotImplementedError) committed
    nothing: no second login for the compares after it."""
    gw = fake_gateway(Mode.RUN, driver="noconfirm")
    with pytest.raises(UnsupportedError):
        gw.commit("hostname r1\nhostname r2\n", revert_in=60)
    gw.compare("hostname r1\n")
    assert gw.logins == 1 and gw._side_device is None


def _left_pending(box: EosBox) -> tuple[str, NetworkGateway]:
    """A commit made with revert_in by a process that then died: the box keeps the
    session's commit timer running. The caller holds on to the dead gateway and never
    closes it: a killed process runs no close (NAPALM's ``NetworkDriver.__del__`` would,
    and EOS's close aborts the session)."""
    gw = eos_gateway()
    gw.commit(CANDIDATE, revert_in=300)
    (session,) = box.pending()
    return session, gw


def test_a_new_process_confirms_the_eos_commit_an_earlier_one_left_pending(box: EosBox) -> None:
    """NAPALM's EOS driver confirms only its own object's session: the resumed run's
    gateway adopts the device's pending session for the confirm (and the compares before
    it, on the same connection, leave it pending)."""
    session, _dead = _left_pending(box)
    gw = eos_gateway()
    assert gw.has_pending_commit()
    assert gw.compare(CANDIDATE) == "" and gw.compare(RUNNING) != ""  # the resume's checks
    assert box.pending() == [session] and box.running == _lines(CANDIDATE)
    gw.confirm()
    assert box.pending() == [] and box.running == _lines(CANDIDATE)
    assert f"configure session {session} commit" in box.sent
    assert gw._device.config_session is None  # adopted for that call only
    assert not gw.has_pending_commit() and gw.logins == 1
    gw.close()


def test_a_new_process_rolls_back_the_eos_commit_an_earlier_one_left_pending(
    box: EosBox,
) -> None:
    session, _dead = _left_pending(box)
    gw = eos_gateway()
    gw.rollback()
    assert box.pending() == [] and box.running == _lines(RUNNING)
    assert f"configure session {session} abort" in box.sent
    assert gw._device.config_session is None
    gw.close()


def test_an_adopted_session_whose_confirm_fails_is_let_go(
    box: EosBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A confirm that fails leaves the adopted session with the box, not with the driver
    object: the next compare loads into a session of its own, and its discard does not
    abort the pending commit."""
    session, _dead = _left_pending(box)
    commit = box._session_command

    def refuse_commit(name: str, words: list[str]) -> dict[str, object]:
        if words == ["commit"]:
            raise ValueError("% the box is busy")
        return commit(name, words)

    monkeypatch.setattr(box, "_session_command", refuse_commit)
    gw = eos_gateway()
    with pytest.raises(ValueError, match="busy"):
        gw.confirm()
    assert gw._device.config_session is None
    assert gw.compare(CANDIDATE) == ""
    assert box.pending() == [session] and box.running == _lines(CANDIDATE)
    gw.close()


def test_a_connection_holding_its_own_commit_adopts_nothing(box: EosBox) -> None:
    """Two commits cannot pend on EOS: a connection whose own commit pends confirms that
    one, never another session (and a plan cannot reach confirm at all)."""
    gw = eos_gateway()
    gw.commit(CANDIDATE, revert_in=300)
    own = gw._device.config_session
    box.sessions["other"] = {"state": "pendingCommitTimer", "lines": [], "commitBy": 1300.0}
    gw.confirm()
    assert f"configure session {own} commit" in box.sent
    assert "configure session other commit" not in box.sent
    assert box.pending() == ["other"]
    gw.close()


def test_a_commit_with_revert_in_names_its_session_after_the_run(box: EosBox) -> None:
    """The session a commit-confirm pends in carries the run's id, and the gateway names it
    (`NetworkGateway.session`: the commit's evidence, in the run's record)."""
    gw = eos_gateway()
    gw.commit(CANDIDATE, revert_in=300)
    (session,) = box.pending()
    assert session.startswith("runbooks_run-7_") and gw.session == session
    assert gw.has_own_pending_commit()
    gw.confirm()
    assert gw.session is None and not gw.has_own_pending_commit()
    gw.close()


@pytest.mark.parametrize("other_run", ["run-8", "run-7-2", ""], ids=["run", "prefixed", "no run"])
def test_another_process_pending_session_is_neither_confirmed_nor_rolled_back(
    box: EosBox, other_run: str
) -> None:
    """A session pending on the box that this run did not name (another run's, a process's
    that is no run: NAPALM's own name) is refused, not adopted: confirm and rollback leave
    it pending, the configuration it committed in place."""
    other = NetworkGateway(Mode.RUN, eos_gateway().target, CREDS, other_run)
    other.commit(CANDIDATE, revert_in=300)  # then its process died, the session pending
    (session,) = box.pending()
    sent = len(box.sent)
    gw = eos_gateway()  # run-7, which committed nothing
    for settle in (gw.confirm, gw.rollback):
        with pytest.raises(LockedError, match="neither confirmed nor rolled back"):
            settle()
        assert gw._device.config_session is None
    assert gw.has_pending_commit()
    with pytest.raises(LockedError, match=f"not this run's \\(config session {session};"):
        gw.has_own_pending_commit()
    assert box.pending() == [session] and box.running == _lines(CANDIDATE)
    assert not [c for c in box.sent[sent:] if c.startswith(f"configure session {session} ")]
    assert "configure replace flash:rollback-0" not in box.sent[sent:]
    gw.close()
    assert box.pending() == [session]


def test_undoing_a_plain_commit_leaves_another_process_pending_session_alone(
    box: EosBox,
) -> None:
    """The rack runbooks' undo of a commit of this run made without revert_in, while another
    process's commit pends: refused (a person looks), never that session aborted."""
    gw = eos_gateway()
    gw.commit(CANDIDATE)  # the run's own, no timer
    other = NetworkGateway(Mode.RUN, gw.target, CREDS, "run-8")
    other.commit(RUNNING + "hostname elsewhere\n", revert_in=300)
    (session,) = box.pending()
    sent = len(box.sent)
    with pytest.raises(LockedError, match="not this run's"):
        restore_device(gw, RUNNING)
    assert box.pending() == [session]
    assert not [c for c in box.sent[sent:] if c.startswith(f"configure session {session} ")]
    assert "configure replace flash:rollback-0" not in box.sent[sent:]
    gw.close()
    assert box.pending() == [session]
