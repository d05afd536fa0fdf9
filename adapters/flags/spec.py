"""The part of a flag platform's SPEC every HTTP platform reads alike: ``KIND:http(s)://HOST[:PORT][/PATH]?OPTIONS``.

Each platform names its kind, its options and the variable its token comes from; what is wrong with the
SPEC is said in one line naming it (with any credentials masked), as bad input.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit, urlunsplit

from console.core.errors import BadInput
from console.core.redact import redact

from ..http import redact_url


@dataclass(frozen=True)
class PlatformSpec:
    #: the server's URL without its options
    base_url: str
    #: each option given (the last one where an option is repeated)
    options: dict[str, str]
    #: the URL as an error names it (credentials masked)
    shown: str


def _listed(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def parse_platform_spec(spec: str, kind: str, usage: str, options: tuple[str, ...], token_env: str) -> PlatformSpec:
    """``spec`` read as ``kind``'s; ``usage`` says what was expected, ``options`` the options it takes and
    ``token_env`` where its token is set instead of in the URL."""
    given, _, url = spec.partition(":")
    parts = urlsplit(url)
    if given != kind or parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInput(f"--flags {redact(spec)!r}: {usage}")
    shown = redact_url(url)
    if parts.username or parts.password:
        raise BadInput(f"--flags {shown!r}: put no credentials in the URL — set {token_env}")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - set(options))
    if unknown:
        raise BadInput(f"--flags {shown!r}: unknown option {unknown[0]!r} — use {_listed(options)}")
    return PlatformSpec(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), query, shown)
