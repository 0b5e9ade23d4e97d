"""No API token is ever stored: a request whose body carries one — the caller's own, or any
NetBox v2 token — is refused before anything is read from it. Clients mask secrets before
they send (the runbook command does); this is the server's own guard, for every write."""

from __future__ import annotations

import re

# NetBox v2 tokens: nbt_<key>.<secret> (the lab's: 12 and 40 characters)
V2_TOKEN = re.compile(r"nbt_[A-Za-z0-9]{8,}\.[A-Za-z0-9]{16,}")
MIN_TOKEN = 16  # shorter "tokens" are not worth matching: they would match ordinary text


def presented_token(authorization: str) -> str:
    """The token in an Authorization header ("Bearer nbt_…", "Token <hex>"); '' for none.

    >>> presented_token("Bearer nbt_abc.def"), presented_token("")
    ('nbt_abc.def', '')
    """
    parts = authorization.split(None, 1)
    return parts[1].strip() if len(parts) == 2 else ""


def carries_token(body: bytes, authorization: str = "") -> bool:
    """Does a request body hold an API token?

    >>> carries_token(b'{"note": "nbt_AAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBB"}')
    True
    >>> carries_token(b'{"note": "abcdef0123456789abcdef0123456789abcdef01"}',
    ...               "Token abcdef0123456789abcdef0123456789abcdef01")
    True
    >>> carries_token(b'{"note": "a plan hash: 9f86d081884c7d65"}')
    False
    """
    text = body.decode("utf-8", errors="replace")
    own = presented_token(authorization)
    # the caller's token whole, or the secret half of a v2 token (nbt_<key>.<secret>)
    for part in {own, own.rpartition(".")[2]}:
        if len(part) >= MIN_TOKEN and part in text:
            return True
    return V2_TOKEN.search(text) is not None
