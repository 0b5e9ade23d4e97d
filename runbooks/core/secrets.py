"""Masking of secrets before anything is written: records, exports, logs, review documents.

Two nets, because either alone leaks:
- values: every secret the process learns (a token from the environment, a password
  parameter declared as ``SecretStr``) is registered and replaced wherever it appears,
  also inside longer strings;
- names: a mapping key that names a secret (``password``, ``token``, ``api_key`` ...) has
  its value replaced whatever it is, and known token shapes (NetBox v1/v2 tokens,
  private-key blocks) are replaced by pattern.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import SecretBytes, SecretStr

MASK = "********"

_SECRET_KEY = re.compile(
    r"(password|passwd|passphrase|(^|[_-])pass($|[_-])|secret|token|api[_-]?key"
    r"|private[_-]?key|credential|authorization|(^|[_-])auth($|[_-]))",
    re.IGNORECASE,
)
_SECRET_SHAPES = [
    re.compile(r"nbt_[A-Za-z0-9]+\.[A-Za-z0-9]+"),  # NetBox v2 token
    re.compile(r"(?i)(\b(?:Token|Bearer)\s+)[A-Za-z0-9_.\-]{20,}"),  # Authorization values
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL),
]
_MIN_SECRET_LEN = 4  # shorter values would mask ordinary words

_lock = threading.Lock()
_values: set[str] = set()


def register(*values: str | SecretStr | SecretBytes | None) -> None:
    """Remember secret values so that every later write masks them."""
    with _lock:
        for item in values:
            if isinstance(item, SecretStr):
                value = item.get_secret_value()
            elif isinstance(item, SecretBytes):
                value = item.get_secret_value().decode(errors="replace")
            else:
                value = item or ""
            if len(value) >= _MIN_SECRET_LEN:
                _values.add(value)


def register_model(model: Any) -> None:
    """Register every ``SecretStr`` field of a pydantic model instance."""
    for name in type(model).model_fields:
        value = getattr(model, name, None)
        if isinstance(value, SecretStr | SecretBytes):
            register(value)


def register_environment(env: Mapping[str, str] | None = None) -> None:
    """Register the values of secret-named environment variables (``*_TOKEN``, ``*PASSWORD``)."""
    source = os.environ if env is None else env
    register(*(value for key, value in source.items() if is_secret_key(key)))


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def mask_text(text: str) -> str:
    """Replace registered values and known secret shapes in one string."""
    with _lock:
        values = sorted(_values, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    for shape in _SECRET_SHAPES:
        if shape.groups:
            text = shape.sub(lambda m: m.group(1) + MASK, text)
        else:
            text = shape.sub(MASK, text)
    return text


def mask(data: Any) -> Any:
    """Return a copy of a JSON-like structure with every secret masked."""
    if isinstance(data, str):
        return mask_text(data)
    if isinstance(data, SecretStr | SecretBytes):
        return MASK
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            skey = str(key)
            if is_secret_key(skey) and value not in (None, "", [], {}):
                out[skey] = MASK if not isinstance(value, bool | int | float) else value
            else:
                out[skey] = mask(value)
        return out
    if isinstance(data, list | tuple):
        return [mask(item) for item in data]
    return data


def masked_env(env: Mapping[str, str], keep: Iterable[str] = ()) -> dict[str, str]:
    """An environment with secret-named variables and secret values masked."""
    keep_set = set(keep)
    return {
        k: (v if k in keep_set else MASK if is_secret_key(k) else mask_text(v))
        for k, v in env.items()
    }


class MaskingFilter(logging.Filter):
    """A logging filter that masks secrets in every record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message or record.args:
            record.msg = masked
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_masking(logger: logging.Logger | None = None) -> None:
    """Mask secrets on every handler of ``logger`` (the root logger by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
