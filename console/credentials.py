"""The OS keyring as routedeck's secret store: service ``routedeck``, user ``<profile>:<credential>``.

``install()`` registers the keyring with ``console.core.credentials`` so every adapter's token
lookup tries it first for the active profile. A machine without a usable keyring backend reads
tokens from the environment as before; storing one there fails with a message naming the
variable to set instead. No function here returns or formats a token into text.
"""

from __future__ import annotations

from console.core.credentials import SERVICE, Credential, account, register_store
from console.core.errors import BadInput


class KeyringUnavailable(BadInput):
    """No usable OS keyring on this machine (exit code 2)."""


def keyring_lookup(profile: str, name: str) -> str | None:
    """The stored token for ``<profile>:<name>``, or None when absent or when there is no keyring."""
    try:
        import keyring

        return keyring.get_password(SERVICE, account(profile, name))
    except Exception:  # no backend, a locked or broken one: the environment is the fallback
        return None


def install() -> None:
    """Make the keyring the first place tokens are read from (for the active profile)."""
    register_store(keyring_lookup)


def backend_name() -> str:
    import keyring

    backend = keyring.get_keyring()
    return f"{type(backend).__module__.removeprefix('keyring.backends.')}.{type(backend).__name__}"


def _unavailable(credential: Credential, why: str) -> KeyringUnavailable:
    return KeyringUnavailable(
        f"cannot store the {credential.what} in the OS keyring ({why}) — "
        f"set {credential.env_var} in the environment instead"
    )


def check_keyring(credential: Credential) -> None:
    """Raise KeyringUnavailable (naming the variable to use instead) when no keyring backend exists."""
    import keyring
    from keyring.backends import fail

    if isinstance(keyring.get_keyring(), fail.Keyring):
        raise _unavailable(credential, f"no keyring backend on this machine, {backend_name()}")


def store_token(profile: str, credential: Credential, token: str) -> str:
    """Store ``token`` for ``profile`` and confirm it by reading it back; returns the backend's name."""
    import keyring

    check_keyring(credential)
    name = backend_name()
    try:
        keyring.set_password(SERVICE, account(profile, credential.name), token)
        stored = keyring.get_password(SERVICE, account(profile, credential.name))
    except Exception as exc:  # KeyringError, or a backend's own (D-Bus, a locked store); its text may echo input
        raise _unavailable(credential, f"{name}: {type(exc).__name__}") from None
    if stored != token:
        raise _unavailable(credential, f"{name} did not keep it")
    return name
