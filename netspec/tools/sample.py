"""``netspec.sample``: text drawn from a character model with a snapshot's parameters (netspec sample)."""
from __future__ import annotations

from ..config.spec import NetSpec, load_spec
from ..training.sampling import generate


def sample(config, weights: str, *, length: int = 500, temperature: float = 1.0, prime: str = "", seed: int = 0,
           argmax: bool = False, overrides=()) -> str:
    """Text drawn from the character model of ``config`` with the parameters of the snapshot ``weights``."""
    spec = config if isinstance(config, NetSpec) else load_spec(config, overrides)
    return generate(spec, weights=weights, length=length, temperature=temperature, prime=prime, seed=seed,
                    argmax=argmax)
