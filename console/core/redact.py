"""Hide credentials before text reaches a screen, a log or an error message."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"//[^/@\s]+@")
#: a query option whose name holds one of these words carries a credential (api_token, sdkKey, x-auth, user…)
CREDENTIAL_WORDS = ("token", "secret", "key", "password", "passwd", "auth", "user")
_SECRET_QUERY = re.compile(r"(?i)([?&][^=&\s]*(?:" + "|".join(CREDENTIAL_WORDS) + r")[^=&\s]*=)[^&\s]+")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


#: credential values routedeck has read (``remember_secret``): hidden wherever they appear, even bare
_KNOWN: set[str] = set()
#: shorter values are not hidden on their own: they could be ordinary words of a message
MIN_SECRET_LEN = 8


def remember_secret(value: str | None) -> None:
    """Hide ``value`` in every later ``redact`` (a server may echo a token back in its error text)."""
    if value and len(value.strip()) >= MIN_SECRET_LEN:
        _KNOWN.add(value.strip())
        _KNOWN.add(value.strip().rstrip("="))


def hide_known(text: str) -> str:
    """``text`` with every credential value routedeck has read (``remember_secret``) replaced by ***."""
    for secret in sorted(_KNOWN, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


def redact(text: str) -> str:
    """``text`` with known credential values, URL user-info, token-like query values and bearer
    tokens replaced by ***."""
    text = hide_known(text)
    text = _USERINFO.sub("//***@", text)
    text = _SECRET_QUERY.sub(r"\1***", text)
    return _BEARER.sub(r"\1***", text)
