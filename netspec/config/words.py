"""How messages write shapes and counts (used by every stage's errors and reports)."""
from __future__ import annotations


def fmt_shape(shape) -> str:
    """``64×1×28×28``"""
    return "×".join(str(int(s)) for s in shape)


def count_phrase(bounds, word) -> str:
    """'exactly 2 bottoms', 'at least 1 top', '0 to 1 tops' for (min, max) bounds."""
    lo, hi = bounds
    if hi == lo:
        return f"exactly {lo} {word}{'s' if lo != 1 else ''}"
    if hi is None:
        return f"at least {lo} {word}{'s' if lo != 1 else ''}"
    return f"{lo} to {hi} {word}s"
