"""The department's naming standard: host names and account names, decided in one place.

- A PC is ``<site code>-pc<asset number>``: the site code is the NetBox site's slug without
  separators (``ams-dc2`` → ``amsdc2``), the asset number the digits of its asset tag, at least
  four (``PC-42`` → ``0042``). At most 15 characters (the NetBIOS limit, so the name is the same
  on every network), lowercase letters, digits and hyphens (RFC 1123).
- A user's account is the local part of their e-mail address in the department's directory,
  lowercase (``WChen@example.com`` → ``wchen``): a POSIX name of at most 32 characters.
"""

from __future__ import annotations

import re

from runbooks.core.errors import InputError

MAX_HOSTNAME = 15
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_ACCOUNT = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def site_code(site_slug: str) -> str:
    code = re.sub(r"[^a-z0-9]", "", site_slug.lower())
    if not code:
        raise InputError(f"site {site_slug!r} gives no site code (letters or digits)")
    return code


def asset_number(asset_tag: str) -> str:
    digits = "".join(c for c in asset_tag if c.isdigit())
    if not digits:
        raise InputError(f"asset tag {asset_tag!r} has no number")
    return digits.lstrip("0").rjust(4, "0")


def pc_hostname(site_slug: str, asset_tag: str) -> str:
    """``ams-dc2``, ``PC-0042`` → ``amsdc2-pc0042``."""
    name = f"{site_code(site_slug)}-pc{asset_number(asset_tag)}"
    if len(name) > MAX_HOSTNAME or not _HOSTNAME.match(name):
        raise InputError(
            f"PC name {name!r} (site {site_slug!r}, asset tag {asset_tag!r}) breaks the naming "
            f"standard: at most {MAX_HOSTNAME} characters, letters, digits and hyphens"
        )
    return name


def account_name(email: str) -> str:
    """``WChen@example.com`` → ``wchen``."""
    local, at, _domain = email.partition("@")
    name = local.lower()
    if not at or not _ACCOUNT.match(name):
        raise InputError(
            f"no account name in {email!r}: the part before @ must be a POSIX user name "
            "(a letter or _, then letters, digits, _ or -, at most 32)"
        )
    return name
