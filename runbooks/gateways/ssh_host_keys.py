"""How OpenSSH says it refused a host for its key, read the same way by every transport that
runs the ``ssh`` client (Ansible's connection, the database server's shell)."""

from __future__ import annotations

_CHANGED = ("IDENTIFICATION HAS CHANGED", "has changed and you have requested strict")
_UNKNOWN = ("host key is known for", "Host key verification failed")


def key_refusal(ssh_output: str) -> str:
    """How ssh refused a host for its key, as the end of a sentence ("its host key …
    <known_hosts>"); "" if it did not.

    >>> key_refusal("Failed to connect to the host via ssh: @@@ WARNING: REMOTE HOST IDENTIF")
    ''
    >>> key_refusal("...@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @...")
    'does not match the one in'
    >>> key_refusal("No ED25519 host key is known for 198.18.0.41 and you have requested strict")
    'is not in'
    >>> key_refusal("Host key verification failed.")
    'is not in'
    """
    if any(said in ssh_output for said in _CHANGED):
        return "does not match the one in"
    if any(said in ssh_output for said in _UNKNOWN):
        return "is not in"
    return ""
