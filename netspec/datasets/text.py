"""``netspec data text``: a text file → a character vocabulary and integer-coded HDF5 shards.

The vocabulary is every distinct character of the file, in code-point order, so a character's code is its
index (saved as ``vocab.json`` beside the shards and as the ``vocab`` attribute of each shard).  The last
``val_fraction`` (10%) of the text is the validation split, as nanoGPT and char-rnn take it, so figures
compare.  Each shard holds one dataset, ``text``: the codes of a stretch of the text, in order; the list
files ``train.txt`` and ``val.txt`` name the shards of each split.
"""
from __future__ import annotations

import json
import os

import numpy as np

from ..config.errors import DataError
from . import write_shards


def prepare(path: str, out: str, *, shard_rows: int = 1_000_000, progress=None, echo=print,
            val_fraction: float = 0.1, encoding: str = "utf-8") -> dict:
    """Write the vocabulary and the shards of both splits under ``out``; returns {split: Prepared}."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such text file")
    try:
        with open(path, encoding=encoding) as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not {encoding} text ({exc.reason} at byte {exc.start})") from None
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    if len(text) < 2:
        raise DataError(f"{path}: {len(text)} characters; a text to learn needs more")
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    codes = np.fromiter((index[c] for c in text), dtype=np.int32, count=len(text))
    cut = min(len(codes) - 1, max(1, int(len(codes) * (1 - val_fraction))))   # nanoGPT: int(n * 0.9)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as fh:
        json.dump({"chars": chars, "source": os.path.abspath(path), "characters": len(text)}, fh, ensure_ascii=False)
    prepared = {}
    for split, part in (("train", codes[:cut]), ("val", codes[cut:])):
        prepared[split] = write_shards(out, split, {"text": part}, shard_rows, progress,
                                       attrs={"vocab": json.dumps(chars, ensure_ascii=False)})
    echo(f"vocabulary: {len(chars)} symbols ({out}/vocab.json)")
    return prepared
