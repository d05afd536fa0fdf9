"""Hide credentials before text reaches a screen, a log or an error message."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"//[^/@\s]+@")
_SECRET_QUERY = re.compile(r"(?i)([?&](?:token|secret|key|apikey|api_key|password|auth|access_token)=)[^&\s]+")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    """``text`` with URL user-info, token-like query values and bearer tokens replaced by ***."""
    text = _USERINFO.sub("//***@", text)
    text = _SECRET_QUERY.sub(r"\1***", text)
    return _BEARER.sub(r"\1***", text)
