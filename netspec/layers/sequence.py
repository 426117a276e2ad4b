"""SequenceData: time-major batches of a character text for recurrent nets (Karpathy's char-rnn, Flux's
char model).

Tops, each T×N (``seq_len`` steps of ``batch_size`` sequences; the examples lie on axis 1): the input codes,
optionally ``cont`` (Caffe's convention: 0 where a sequence starts, 1 where it continues), and the targets
(the next character).  Write ``tops: [input, target]`` or ``tops: [input, cont, target]``.

* ``mode: streams`` — the text is cut into N contiguous streams, and each batch advances every stream by T
  characters, so a recurrent layer that carries its state reads each stream without a break (truncated
  back-propagation through time, as char-rnn); ``cont`` is 0 at the first step of an epoch only;
* ``mode: windows`` — every batch is N independent windows at random places (a pure function of the seed,
  the epoch and the batch), each starting a sequence (``cont`` 0 at its first step).

The text comes from ``source:`` (the list file ``netspec data text`` writes, with its ``vocab.json``) or
inline from ``text:`` (with ``vocab:``, default its distinct characters).  The cursor (epoch, batch) is the
layer's state, so a resumed run continues mid-epoch exactly.
"""
from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass

import h5py
import numpy as np

from ..config import registry
from ..config.errors import DataError
from ..config.fields import boolean, choice, integer, optional, param, string
from .base import Layer
from .data import resolve


def _vocab(v):
    if v is None:
        return None
    if isinstance(v, str):
        return tuple(v)
    if isinstance(v, list) and all(isinstance(c, str) and len(c) == 1 for c in v):
        return tuple(v)
    from ..config.fields import Invalid
    raise Invalid("expected the characters of the vocabulary, as a string or a list of single characters")


def vocabulary(p, base_dir: str, where: str) -> tuple:
    """The characters by code of a SequenceData's params ``p``: ``vocab``, else the inline text's distinct
    characters, else the ``vocab.json`` that ``netspec data text`` wrote beside the list file."""
    if p.vocab:
        return tuple(p.vocab)
    if p.text is not None:
        return tuple(sorted(set(p.text)))
    src = resolve(p.source, base_dir)
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(src)), "vocab.json"), encoding="utf-8") as fh:
            return tuple(json.load(fh)["chars"])
    except (OSError, ValueError, KeyError):
        raise DataError(f"{where}: no vocab.json beside '{src}'") from None


@dataclass(frozen=True)
class SequenceDataParams:
    batch_size: int = param(integer(lo=1), doc="N: sequences per batch")
    seq_len: int = param(integer(lo=1), doc="T: steps per batch (the unrolled length)")
    source: str | None = param(optional(string()), None, "list file of a text prepared by `netspec data text`")
    text: str | None = param(optional(string()), None, "the text itself (small examples), instead of source")
    vocab: tuple | None = param(_vocab, None, "characters by code (default: vocab.json beside source, or the "
                                              "text's distinct characters)")
    mode: str = param(choice("streams", "windows"), "streams", "streams (contiguous, state carried) or windows")
    shuffle: bool = param(boolean(), False, "(windows draw random places anyway; kept for Caffe configs)")

    def check(self):
        if (self.source is None) == (self.text is None):
            return [("", "give exactly one of source (a prepared text's list file) or text")]
        return []


@registry.layers.register("SequenceData")
class SequenceDataLayer(Layer):
    """Time-major T×N batches of a character text: input codes, optional cont, and next-character targets."""

    Params = SequenceDataParams
    is_source = True
    n_bottoms = (0, 0)
    n_tops = (2, 3)
    differentiable = False
    batch_axis = 1
    batch_valid = None

    def setup(self, bottoms):
        self.codes, self.vocab = self._load()
        t, n = self.p.seq_len, self.p.batch_size
        if len(self.codes) < t + (1 if self.p.mode == "streams" else 2):
            raise DataError(f"{self.where}: layers -> {self.name}: the text has {len(self.codes)} characters, "
                            f"too few for seq_len {t}")
        if self.p.mode == "streams":
            self.stream_len = (len(self.codes) - 1) // n
            self.batches_per_epoch = self.stream_len // t
            if self.batches_per_epoch < 1:
                raise DataError(f"{self.where}: layers -> {self.name}: {len(self.codes)} characters in {n} streams "
                                f"give streams of {self.stream_len}, shorter than seq_len {t}; use a smaller "
                                "batch_size or seq_len")
        else:
            self.batches_per_epoch = max(1, (len(self.codes) - 1) // (t * n))
        self.epoch_size = self.batches_per_epoch * t * n
        self.text_bufs = np.asarray(self.codes, self.dtype)         # host buffer the batches are taken from
        self.epoch, self.batch = 0, 0
        self._key = zlib.crc32(self.name.encode())
        r = self.ctx.rows
        self.cols = range(r.start or 0, n if r.stop is None else r.stop)
        return [(t, len(self.cols))] * len(self.spec.tops)

    def _load(self):
        p = self.p
        where = f"{self.where}: layers -> {self.name}"
        if p.text is not None:
            vocab = vocabulary(p, self.ctx.base_dir, where)
            index = {c: i for i, c in enumerate(vocab)}
            missing = sorted(set(p.text) - set(index))
            if missing:
                raise DataError(f"{where}: characters {''.join(missing)!r} of the text "
                                "are not in the vocabulary")
            return np.asarray([index[c] for c in p.text], np.int64), vocab
        src = resolve(p.source, self.ctx.base_dir)
        if not os.path.isfile(src):
            raise DataError(f"{where} -> source: list file '{p.source}' not found "
                            "(prepare the text with `netspec data text FILE --out FOLDER`)")
        folder = os.path.dirname(os.path.abspath(src))
        parts = []
        with open(src) as fh:
            names = [ln.strip() for ln in fh if ln.strip() and not ln.startswith("#")]
        for name in names:
            path = name if os.path.isabs(name) else os.path.join(folder, name)
            try:
                with h5py.File(path, "r") as f:
                    parts.append(f["text"][()].astype(np.int64))
            except (OSError, KeyError) as exc:
                raise DataError(f"{where}: cannot read the codes of '{path}' ({exc})") from None
        vocab = vocabulary(p, self.ctx.base_dir, where)
        codes = np.concatenate(parts) if parts else np.asarray([], np.int64)
        if len(codes) and codes.max() >= len(vocab):
            raise DataError(f"{where}: code {int(codes.max())} in '{src}' is outside "
                            f"the vocabulary of {len(vocab)} characters (a vocabulary of another text?)")
        return codes, vocab

    def _starts(self) -> np.ndarray:
        """Where each of the N sequences of this batch starts in the text."""
        n, t = self.p.batch_size, self.p.seq_len
        if self.p.mode == "streams":
            return np.arange(n) * self.stream_len + self.batch * t
        rng = np.random.default_rng([self.ctx.seed, self._key, self.epoch, self.batch])
        return rng.integers(0, len(self.codes) - t - 1, size=n)

    def forward(self):
        t = self.p.seq_len
        starts = self._starts()[self.cols.start:self.cols.stop]
        idx = starts[None, :] + np.arange(t)[:, None]               # T×n positions
        tops = self.tops
        self.be.take_rows(self.text_bufs, idx, tops[0].data)
        self.be.take_rows(self.text_bufs, idx + 1, tops[-1].data)
        if len(tops) == 3:
            self.be.fill(tops[1].data, 1.0)
            if self.p.mode == "windows" or self.batch == 0:
                self.be.fill(tops[1].data[0], 0.0)
        self.batch += 1
        if self.batch == self.batches_per_epoch:
            self.batch, self.epoch = 0, self.epoch + 1

    def backward(self):
        pass

    def rewind(self):
        """Back to the first batch of the current epoch (every validation pass starts here)."""
        self.batch = 0

    def state(self):
        return {"epoch": self.epoch, "batch": self.batch, "length": len(self.codes)}

    def set_state(self, state):
        if int(state["length"]) != len(self.codes) or not 0 <= int(state["batch"]) < self.batches_per_epoch:
            raise ValueError(f"layer '{self.name}': the cursor (batch {state['batch']} of a text of "
                             f"{state['length']} characters) does not fit this text of {len(self.codes)}: did the "
                             "data change since the snapshot?")
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
