"""Rules found missing in review: each would let a person get round separation of duties."""

from __future__ import annotations

import secrets

import pytest
from runbooks_rules.policy import (
    APPROVE,
    EMERGENCY,
    HANDLE,
    REVIEW,
    Identity,
    Refusal,
    Signature,
    check_run,
    check_sign,
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
