"""`routedeck login PROFILE`: store a backend token for a profile in the OS keyring.

The token is read from a hidden prompt, or from standard input when it is not a terminal
(`printf %s "$TOKEN" | routedeck login prod`). It is stored under service `routedeck`, user
`PROFILE:NAME`, read back to confirm, and never printed. Without a usable keyring the command says
which environment variable to set instead and exits 2.
"""

from __future__ import annotations

import argparse
import sys

from console.core.credentials import BY_NAME, CREDENTIALS, Credential, needed_credentials
from console.core.errors import BadInput


def add_parser(sub) -> None:
    p = sub.add_parser("login", help="store a token for a profile in the OS keyring (hidden prompt or stdin)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("profile_name", metavar="PROFILE", help="a profile of the config file")
    p.add_argument("--which", choices=[c.name for c in CREDENTIALS],
                   help="which token (default: the one the profile's backends read, when there is only one)")
    p.set_defaults(run=run)


def which_credential(profile, which: str | None) -> Credential:
    """The credential to store: ``--which``, else the profile's only required one."""
    if which:
        return BY_NAME[which]
    needed = needed_credentials(profile.flags, profile.metrics)
    required = [c for c in needed if c.required] or needed
    if len(required) == 1:
        return required[0]
    if not required:
        raise BadInput(
            f"profile {profile.name} reads no token (its backends need none) — "
            f"name one with --which ({', '.join(BY_NAME)})"
        )
    raise BadInput(
        f"profile {profile.name} reads several tokens ({', '.join(c.name for c in needed)}) — choose one with --which"
    )


def read_secret(credential: Credential, profile: str) -> str:
    """The token from a hidden prompt on a terminal, else the first line of standard input."""
    if sys.stdin is not None and sys.stdin.isatty():
        import getpass

        text = getpass.getpass(f"{credential.what} for profile {profile} (hidden): ")
    else:
        text = (sys.stdin.readline() if sys.stdin is not None else "")
    token = text.strip()
    if not token:
        raise BadInput(f"no {credential.what} given — type it at the prompt or pipe it on standard input")
    return token


def run(args: argparse.Namespace) -> int:
    from console.core.config import load_config
    from console.credentials import check_keyring, store_token

    profile = load_config().get(args.profile_name)
    credential = which_credential(profile, args.which)
    check_keyring(credential)  # say so before asking for the secret
    token = read_secret(credential, profile.name)
    backend = store_token(profile.name, credential, token)
    print(f"stored the {credential.what} for profile {profile.name} in the keyring ({backend}); "
          f"read back and confirmed — it is used before {credential.env_var}")
    return 0
