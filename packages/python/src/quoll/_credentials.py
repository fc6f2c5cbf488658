"""Where a client connects: the same order as the TypeScript SDK and the CLI."""

import json
import os
from typing import Mapping, Optional, Tuple

from .errors import AuthError

__all__ = ["resolve_client_options"]


def resolve_client_options(
    url: Optional[str] = None,
    token: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
) -> Tuple[str, str]:
    """Resolves ``(url, token)``: explicit arguments → ``QUOLL_URL`` + ``QUOLL_TOKEN`` (set inside
    tasks) → ``$QUOLL_HOME/credentials.json`` → ``./.quoll/credentials.json``.

    Raises:
        AuthError: ``unauthenticated`` when nothing is found or a credentials file is broken.
    """
    if url is not None and token is not None:
        return url, token
    env = os.environ if env is None else env
    if env.get("QUOLL_URL") and env.get("QUOLL_TOKEN"):
        return url or env["QUOLL_URL"], token or env["QUOLL_TOKEN"]
    cwd = os.getcwd() if cwd is None else cwd
    candidates = []
    if env.get("QUOLL_HOME"):
        candidates.append(os.path.join(os.path.join(cwd, env["QUOLL_HOME"]), "credentials.json"))
    candidates.append(os.path.join(cwd, ".quoll", "credentials.json"))
    for path in candidates:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        try:
            creds = json.loads(text)
        except ValueError:
            creds = None
        if isinstance(creds, dict) and isinstance(creds.get("url"), str) and isinstance(creds.get("token"), str):
            return url or creds["url"], token or creds["token"]
        # Named: a broken file should not hide behind "no credentials".
        raise AuthError(
            "unauthenticated",
            f'The credentials file {path} is not {{"url": "...", "token": "..."}}; restart "quoll server" '
            "on that home to rewrite it, or pass quoll.Client(url=..., token=...).",
        )
    raise AuthError(
        "unauthenticated",
        "No Quoll credentials found: pass quoll.Client(url=..., token=...), set QUOLL_URL and QUOLL_TOKEN, "
        f'or start "quoll server" (it writes {" or ".join(candidates)}).',
    )
