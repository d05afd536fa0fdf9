"""The part of a backend's SPEC every HTTP backend reads alike: ``KIND:http(s)://HOST[:PORT][/PATH]?OPTIONS``.

Each backend names its kind, its options and where its credentials are set instead of in the URL; what
is wrong with the SPEC is said in one line naming it (with any credentials masked), as bad input.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit, urlunsplit

from console.core.errors import BadInput
from console.core.redact import CREDENTIAL_WORDS, redact

from .http import redact_url


@dataclass(frozen=True)
class HttpSpec:
    #: scheme and host (with port), no path
    origin: str
    #: the server's URL, path included, without its options
    base_url: str
    #: each option given (the last one where an option is repeated; a blank value is kept as "")
    options: dict[str, str]
    #: the URL as an error names it (credentials masked)
    shown: str


def _listed(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def parse_http_spec(spec: str, kind: str, usage: str, options: tuple[str, ...], credentials: str,
                    flag: str = "--flags") -> HttpSpec:
    """``spec`` (given as ``flag``) read as ``kind``'s; ``usage`` says what was expected, ``options`` the
    options it takes and ``credentials`` what to set instead of putting them in the URL."""
    given, _, url = spec.partition(":")
    parts = urlsplit(url)
    if given != kind or parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInput(f"{flag} {redact(spec)!r}: {usage}")
    shown = redact_url(url)
    if parts.username or parts.password:
        raise BadInput(f"{flag} {shown!r}: put no credentials in the URL — set {credentials}")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - set(options))
    # an unknown option named like a credential (api_token=…) is one put in the URL: said so, not "unknown"
    if any(word in name.lower() for name in unknown for word in CREDENTIAL_WORDS):
        raise BadInput(f"{flag} {shown!r}: put no credentials in the URL — set {credentials}")
    if unknown:
        raise BadInput(f"{flag} {shown!r}: unknown option {unknown[0]!r} — use {_listed(options)}")
    return HttpSpec(f"{parts.scheme}://{parts.netloc}", urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
                    query, shown)
