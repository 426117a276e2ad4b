"""Settings read from the environment, each checked with a one-line error naming the variable."""
from __future__ import annotations

import os

from .errors import NetspecError


def env_count(name: str) -> int | None:
    """A positive whole number from ``$name``, or None when it is unset or empty."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise NetspecError(f"environment variable {name}={raw!r}: expected a whole number (e.g. {name}=2)") from None
    if not 1 <= value <= 4096:
        raise NetspecError(f"environment variable {name}={raw!r}: expected 1 to 4096")
    return value
