"""How HTTPS connections check the server: certificate verification on or off, and an extra CA bundle.

The active profile sets this once; the HTTP plumbing of every adapter reads it when it builds a
client, and the console header reads it to say loudly when verification is off.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsSettings:
    """``verify`` off trusts any certificate; ``ca_bundle`` adds the CAs in a PEM file."""

    verify: bool = True
    ca_bundle: Path | None = None

    @property
    def warning(self) -> str | None:
        """What the header shows when certificates are not checked, else None."""
        return None if self.verify else "TLS verification OFF"


_active = TlsSettings()


def use_tls(settings: TlsSettings | None) -> None:
    """Make ``settings`` the ones new clients use (``None`` restores the defaults)."""
    global _active
    _active = settings or TlsSettings()


def tls_settings() -> TlsSettings:
    return _active
