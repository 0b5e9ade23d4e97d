"""Rules found missing in review: each would let a person get round separation of duties."""

from __future__ import annotations

import secrets

import pytest
from runbooks_rules.policy import (
    APPROVE,
    EMERGENCY,
    HANDLE,
    REVIEW,
    SUPERVISE,
    Identity,
    Refusal,
    Signature,
    authorities_from,
    check_run,
    check_sign,
    group_authorities,
    groups_giving,
)

H = "ab" * 32
SIGNED = [
    Signature(REVIEW, "rachel", "t", H),
    Signature(APPROVE, "arthur", "t", H),
    Signature(EMERGENCY, "bruno", "t", H),
]


def test_the_emergency_approver_does_not_run_the_change_either() -> None:
    bruno = Identity("bruno", frozenset({HANDLE, APPROVE}))
    with pytest.raises(Refusal, match="bruno reviewed or approved this change"):
        check_run(bruno, H, SIGNED, in_window=False)
    olivia = Identity("olivia", frozenset({HANDLE}))
    assert check_run(olivia, H, SIGNED, in_window=False) is True


def test_a_token_given_as_the_hash_is_not_echoed() -> None:
    rachel = Identity("rachel", frozenset({REVIEW}))
    token = "nbt_abcdef012345." + secrets.token_hex(12)  # a token pasted by mistake
    with pytest.raises(Refusal) as refused:
        check_sign(rachel, REVIEW, "olivia", H, token, [])
    assert "abcdef" not in str(refused.value) and "not a hash" in str(refused.value)
    with pytest.raises(Refusal, match="got 0000000000000000"):
        check_sign(rachel, REVIEW, "olivia", H, "0" * 20, [])


def test_a_department_names_its_groups_and_both_sides_read_them_alike() -> None:
    # the CLI's RUNBOOKS_NETBOX_GROUPS (JSON) and the plugin's PLUGINS_CONFIG (a dict)
    cli = group_authorities('{"it-ops": "handle", "it-leads": ["review", "approve"]}')
    plugin = group_authorities({"it-ops": "handle", "it-leads": ("review", "approve")})
    assert cli == plugin
    groups = ["it-ops", "it-leads", "runbook-supervisors"]
    assert authorities_from(groups, group_map=cli) == {HANDLE, REVIEW, APPROVE}
    assert Identity.from_groups("olivia", groups, group_map=cli).authorities == {
        HANDLE,
        REVIEW,
        APPROVE,
    }
    assert groups_giving(APPROVE, cli) == ["it-leads"]
    assert groups_giving(SUPERVISE, cli) == []
    # without a mapping: today's groups
    assert authorities_from(["runbook-supervisors", "it-ops"]) == {SUPERVISE}
    assert group_authorities(None) == group_authorities({}) == group_authorities("")


@pytest.mark.parametrize(
    "given",
    [{"it-ops": "operate"}, {"it-ops": ["handle", "root"]}, {"it-ops": 3}, ["it-ops"], "{"],
)
def test_a_mapping_that_gives_no_authority_is_refused(given: object) -> None:
    with pytest.raises(ValueError):
        group_authorities(given)
