"""Errors meant for people: one line naming where the problem is and what to do."""

from __future__ import annotations


class RouteDeckError(Exception):
    """Base class for errors shown to the operator as one line (never a traceback)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # keep it one line whatever the caller passed
        return " ".join(self.message.split())


class BadInput(RouteDeckError):
    """A file, option or value given by the user is wrong (exit code 2)."""


class BackendError(RouteDeckError):
    """A flag platform or metrics source failed or cannot be reached (exit code 1).

    ``transient`` says whether trying again later may help (a refused connection, a timeout, a 5xx);
    a refused token or a wrong URL (401, 403, 404) will not go away by itself: retry loops stop at once."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class ConflictError(BackendError):
    """The flag changed on the platform since it was read; the write was not made."""

    def __init__(self, message: str, *, current_revision: str | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.current_revision = current_revision
        self.detail = detail


class WriteNotConfirmed(BackendError):
    """The platform accepted (or claimed to accept) a write but reading it back shows another state."""


class VerdictRefused(BadInput):
    """An advance or promote the verdict does not allow; the command exits with the verdict's code
    (3 HOLD, 4 ROLLBACK), as ``check`` and ``guard`` do."""

    def __init__(self, message: str, verdict: str) -> None:
        super().__init__(message)
        self.verdict = verdict
        self.exit_code = {"HOLD": 3, "ROLLBACK": 4}.get(verdict, 3)
