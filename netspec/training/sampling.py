"""Sampling text from a character model (``netspec sample``, ``netspec.sample``, the ``Sample`` coffee break).

The net of the config is built again with T = 1 and N = 1: its sequence source becomes two ``Input`` layers
(the code of one character and ``cont``), the loss and statistic layers go, and the recurrent layers carry
their state from step to step.  The prime text is fed first; then every drawn character is fed back.  A
draw takes the softmax of the scores divided by the temperature (``argmax`` takes the most likely one);
the same seed gives the same text.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..config import registry
from ..config.errors import DataError, Problem, SpecError, Where
from ..config.spec import NetSpec
from ..layers.sequence import vocabulary
from ..net.net import Net


def sampling_spec(spec: NetSpec):
    """The spec of the one-step net, the vocabulary, and the names of its input and cont blobs."""
    sources = [ls for ls in spec.layers if ls.cls.is_source and ls.type == "SequenceData" and ls.in_phase("test")]
    if not sources:
        sources = [ls for ls in spec.layers if ls.type == "SequenceData"]
    if not sources:
        raise SpecError([Problem(Where(spec.path), "layers", "sampling needs a SequenceData source (a character "
                                                              "model)")])
    src = sources[0]
    inp = registry.layers.get("Input")
    feeds = [dataclasses.replace(src, name=f"{src.name}-{top}", type="Input", phase=None, tops=(top,),
                                 params=inp.Params(shape=(1,), batch_size=1), inferred=())
             for top in src.tops[:-1]]                    # input (and cont); the target is not needed
    layers = feeds + [ls for ls in spec.layers if ls.in_phase("test") and not (
        ls.cls.is_source or ls.cls.has_loss or ls.cls.has_stats)]
    cont = src.tops[1] if len(src.tops) == 3 else None
    vocab = vocabulary(src.params, spec.base_dir, f"{src.where}: layers -> {src.name}")
    return spec.replace(layers=tuple(layers), solver=None, coffee_breaks=()), vocab, src.tops[0], cont


def generate(spec: NetSpec, *, weights: str | None = None, shared=None, length: int = 500,
             temperature: float = 1.0, prime: str = "", seed: int = 0, argmax: bool = False) -> str:
    """``length`` characters drawn from the model (after ``prime``); parameters from the snapshot
    ``weights`` or the ``shared`` parameters of a training net."""
    if temperature <= 0:
        raise DataError(f"temperature must be > 0, got {temperature}")
    one, vocab, inp, cont = sampling_spec(spec)
    index = {c: i for i, c in enumerate(vocab)}
    unknown = sorted(set(prime) - set(index))
    if unknown:
        raise DataError(f"prime: characters {''.join(unknown)!r} are not in the model's vocabulary")
    out_blob = spec.output_blob()
    rng = np.random.default_rng(seed)
    with Net(one, "test", shared=shared) as net:
        if weights is not None:
            from ..training.snapshot import load, load_params
            load_params(net.params, load(weights), strict=True)
        feed = list(prime) or [vocab[int(rng.integers(len(vocab)))]]
        text, step = [], 0

        def forward(ch):
            nonlocal step
            net.blobs[inp].data[...] = index[ch]
            if cont is not None:
                net.blobs[cont].data[...] = 0.0 if step == 0 else 1.0
            net.forward()
            step += 1
            return net.blobs[out_blob].data.reshape(-1)
        for ch in feed[:-1]:
            forward(ch)
        scores = forward(feed[-1])
        for _ in range(length):
            if argmax:
                k = int(np.argmax(scores))
            else:
                z = scores.astype(np.float64) / temperature
                p = np.exp(z - z.max())
                k = int(rng.choice(len(vocab), p=p / p.sum()))
            text.append(vocab[k])
            scores = forward(vocab[k])
    return prime + "".join(text)
