"""Loss layers (SoftmaxLoss, SquareLoss) and the Accuracy statistic.

A loss layer has no top by default (Mocha.jl); the net adds ``weight · loss`` of each to the objective and
seeds back-propagation with ``weight`` (Caffe's ``loss_weight``).  Every loss and statistic layer also
accumulates over many batches for validation: ``reset_statistics()``, then ``statistics()`` gives the mean
over every row counted since — only the first ``ctx.batch_valid`` rows of a batch count, so the mean over
a test set is exact even when the batch size does not divide it.
"""
from __future__ import annotations

from dataclasses import dataclass

import math

from ..config import registry
from ..config.errors import DataError
from ..config.fields import boolean, choice, integer, number, optional, param
from .base import Layer, fmt_shape


class _Accumulating(Layer):
    has_stats = True
    stat_name = "loss"

    def reset_statistics(self):
        self.acc_sum, self.acc_count = 0.0, 0

    def statistic_sums(self) -> dict:
        """{key: (sum, rows)} since the last reset; a sharded net adds these up over its shards."""
        return {f"{self.name}/{self.stat_name}": (self.acc_sum, self.acc_count)}

    def statistics(self):
        return {k: s / c for k, (s, c) in self.statistic_sums().items() if c}

    def valid_rows(self) -> int:
        return self.ctx.valid_rows(self.bottoms[0].num)


def _check_labels(layer, pred, label, axis: int = 1):
    """(outer, classes, inner) of ``pred`` seen around its class ``axis``; one label per outer×inner place."""
    if pred.data.ndim <= axis:
        raise layer.shape_error(f"bottom '{pred.name}' has shape {fmt_shape(pred.shape)}; no class axis {axis}")
    n, c = math.prod(pred.shape[:axis]), pred.shape[axis]
    s = math.prod(pred.shape[axis + 1:])
    if label.data.size != n * s or (axis == 1 and label.shape[0] != n):
        raise layer.shape_error(f"bottom '{label.name}' has shape {fmt_shape(label.shape)}; expected one label per "
                                f"row{' and position' if s > 1 else ''} of '{pred.name}' {fmt_shape(pred.shape)} "
                                f"(N={n}{f', {s} positions' if s > 1 else ''})")
    return n, c, s


def _per_example(layer, n: int, s: int) -> tuple[int, int]:
    """(examples in this replica, places per example): a loss divides by the global examples × places."""
    rows = layer.local_rows or n
    return rows, max(1, n * s // rows)


def _labels_or_raise(layer, label, n_class, n, s, data=None):
    lab = (label.data if data is None else data).reshape(n, s)
    bad = layer.be.first_bad_label(lab, n_class)
    if bad >= 0:
        value = float(layer.be.to_host(lab).reshape(-1)[bad])
        raise DataError(f"{layer.where}: layers -> {layer.name}: label {value:g} at row {bad // s} "
                        f"of blob '{label.name}' is not an integer class in 0..{n_class - 1}")
    return lab


class _Loss(_Accumulating):
    """A loss: two bottoms (prediction, target), no top, a loss value."""
    n_bottoms = (2, 2)
    n_tops = (0, 0)
    has_loss = True


@dataclass(frozen=True)
class LossParams:
    weight: float = param(number(), 1.0, "multiplier of this loss in the objective", caffe="/loss_weight")


@dataclass(frozen=True)
class SoftmaxLossParams(LossParams):
    axis: int = param(integer(lo=1), 1, "the class axis; 2 for T×N×V sequence scores", caffe="softmax_param.axis")
    ignore_label: int | None = param(optional(integer()), None,
                                     "a label that counts for nothing: no loss, no gradient (Caffe); the "
                                     "loss still divides by every place", caffe="loss_param.ignore_label")
    per_symbol: bool = param(boolean(), False, "also report bits per symbol and perplexity (character models)")


@registry.layers.register("SoftmaxLoss")
class SoftmaxLossLayer(_Loss):
    """loss = mean over the batch (and spatial positions) of −log softmax(x)[label]; labels 0..K−1.

    Fused: forward keeps the probabilities, backward is weight · (p − onehot) / (N·S)."""

    caffe_type = "SoftmaxWithLoss"

    Params = SoftmaxLossParams
    nondiff_bottoms = (1,)

    def setup(self, bottoms):
        self.bottoms = bottoms
        pred, label = bottoms
        if pred.data.ndim < 2:
            raise self.shape_error(f"bottom '{pred.name}' has shape {fmt_shape(pred.shape)}, expected N×K scores")
        n, c, s = _check_labels(self, pred, label, self.p.axis)
        self.dims = (n, c, s)
        self.rows, self.places = _per_example(self, n, s)
        self.prob = self.alloc((n, c, s))
        self.losses = self.alloc((n, s))
        self.x_buf = self.contiguous_buffer(pred)        # a strided replica view is copied in (and out)
        self.lab_buf = self.contiguous_buffer(label)
        ignoring = self.p.ignore_label is not None
        self.keep = self.alloc((n, s)) if ignoring else None
        self.lab_work = self.alloc((n, s)) if ignoring else None
        self.reset_statistics()
        return []

    def _labels(self):
        n, c, s = self.dims
        label = self.bottoms[1]
        data = label.data
        if self.lab_buf is not None:
            self.be.copy(label.data, self.lab_buf)
            data = self.lab_buf
        if self.keep is not None:                       # an ignored label becomes class 0, masked by keep
            ig = self.p.ignore_label
            self.be.not_equal(data.reshape(n, s), ig, self.keep)
            self.be.multiply(data.reshape(n, s), self.keep, self.lab_work)
            return _labels_or_raise(self, label, c, n, s, self.lab_work)
        return _labels_or_raise(self, label, c, n, s, data)

    def derived_statistics(self, means: dict) -> dict:
        """Bits per symbol and perplexity of the mean loss in nats (``per_symbol``)."""
        key = f"{self.name}/{self.stat_name}"
        if not self.p.per_symbol or key not in means:
            return {}
        import math
        return {f"{self.name}/bits": means[key] / math.log(2), f"{self.name}/perplexity": math.exp(means[key])}

    def forward(self):
        n, c, s = self.dims
        lab = self._labels()
        x = self.bottoms[0].data
        if self.x_buf is not None:
            self.be.copy(x, self.x_buf)
            x = self.x_buf
        self.be.softmax_loss_forward(x.reshape(n, c, s), lab, self.prob, self.losses)
        if self.keep is not None:                       # ignored places count for nothing
            self.be.multiply(self.losses, self.keep, self.losses)
        norm = self.ctx.norm_rows(self.rows) * self.places
        self.loss = self.be.total(self.losses) / norm
        k = self.ctx.valid_rows(self.rows)
        total = self.be.total(self.losses) if k == self.rows else self.be.total(self.losses[:k])
        self.acc_sum += total / self.places
        self.acc_count += k

    def backward(self):
        if self.propagate_down[0]:
            n, c, s = self.dims
            lab = self._labels()
            scale = self.p.weight / (self.ctx.norm_rows(self.rows) * self.places)
            dx = self.bottoms[0].diff if self.x_buf is None else self.x_buf
            self.be.softmax_loss_backward(self.prob, lab, scale, dx.reshape(n, c, s))
            if self.keep is not None:
                self.be.multiply(dx.reshape(n, c, s), self.keep.reshape(n, 1, s), dx.reshape(n, c, s))
            if self.x_buf is not None:
                self.be.copy(self.x_buf, self.bottoms[0].diff)


@dataclass(frozen=True)
class SquareLossParams(LossParams):
    mode: str = param(choice("euclidean", "mse"), "euclidean",
                      "euclidean: Σ(a−b)² / (2N) as Caffe/Mocha; mse: mean((a−b)²) over all elements")


@registry.layers.register("SquareLoss")
class SquareLossLayer(_Loss):
    """euclidean (default, Caffe's EuclideanLoss): 1/(2N) Σ (a − b)²;  mse: 1/(N·D) Σ (a − b)².

    Gradient: da = weight · (a − b) · c, db = −da, with c = 1/N (euclidean) or 2/(N·D) (mse)."""

    caffe_type = "EuclideanLoss"

    Params = SquareLossParams

    def setup(self, bottoms):
        self.bottoms = bottoms
        a, b = bottoms
        if a.data.size != b.data.size or a.shape[0] != b.shape[0]:
            raise self.shape_error(f"bottoms '{a.name}' {fmt_shape(a.shape)} and '{b.name}' {fmt_shape(b.shape)} "
                                   "must have the same number of rows and elements")
        n, d = a.shape[0], a.data.size // a.shape[0]
        rows = self.ctx.norm_rows(n)
        self.norm = 2.0 * rows if self.p.mode == "euclidean" else float(rows * d)
        self.row_norm = 2.0 if self.p.mode == "euclidean" else float(d)
        self.delta = self.alloc((n, d))
        self.row_sq = self.alloc((n,))
        self.reset_statistics()
        return []

    def forward(self):
        a, b = self.bottoms
        n = a.shape[0]
        self.be.subtract(a.data.reshape(n, -1), b.data.reshape(n, -1), self.delta)
        self.be.row_sq_sum(self.delta, self.row_sq)
        self.loss = self.be.total(self.row_sq) / self.norm
        k = self.valid_rows()
        self.acc_sum += self.be.total(self.row_sq[:k]) / self.row_norm
        self.acc_count += k

    def backward(self):
        a, b = self.bottoms
        n = a.shape[0]
        scale = self.p.weight * 2.0 / self.norm
        if self.propagate_down[0]:
            self.be.scale(self.delta, scale, a.diff.reshape(n, -1))
        if self.propagate_down[1]:
            self.be.scale(self.delta, -scale, b.diff.reshape(n, -1))


@dataclass(frozen=True)
class SigmoidCrossEntropyLossParams(LossParams):
    normalization: str = param(choice("batch", "valid"), "batch", "divide the sum by the batch size (Caffe's "
                               "default for this loss) or by the number of elements", caffe="loss_param.normalization",
                               caffe_values={"BATCH_SIZE": "batch", "VALID": "valid"})


@registry.layers.register("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLossLayer(_Loss):
    """Caffe's SigmoidCrossEntropyLoss: −Σ [t·log σ(x) + (1 − t)·log(1 − σ(x))] over every element, computed
    stably, divided by the batch size N (or by N·D with ``normalization: valid``); targets t in [0, 1] have
    the scores' shape.  Gradient: dx = weight · (σ(x) − t) / norm."""

    caffe_type = "SigmoidCrossEntropyLoss"

    Params = SigmoidCrossEntropyLossParams
    nondiff_bottoms = (1,)

    def setup(self, bottoms):
        self.bottoms = bottoms
        x, t = bottoms
        if x.data.size != t.data.size or x.shape[0] != t.shape[0]:
            raise self.shape_error(f"bottoms '{x.name}' {fmt_shape(x.shape)} and '{t.name}' {fmt_shape(t.shape)} "
                                   "must have the same number of rows and elements (one target per score)")
        n, d = x.shape[0], x.data.size // x.shape[0]
        self.view = (n, d)
        self.row_norm = 1.0 if self.p.normalization == "batch" else float(d)
        self.norm = self.ctx.norm_rows(n) * self.row_norm
        self.prob = self.alloc(self.view)
        self.reset_statistics()
        return []

    def forward(self):
        x, t = (b.data.reshape(self.view) for b in self.bottoms)
        total = self.be.sigmoid_xent_forward(x, t, self.prob)
        self.loss = total / self.norm
        k = self.valid_rows()
        if k < self.view[0]:
            total = self.be.sigmoid_xent_forward(x[:k], t[:k], self.prob[:k])
        self.acc_sum += total / self.row_norm
        self.acc_count += k

    def backward(self):
        if self.propagate_down[0]:
            t = self.bottoms[1].data.reshape(self.view)
            self.be.sigmoid_xent_backward(self.prob, t, self.p.weight / self.norm,
                                          self.bottoms[0].diff.reshape(self.view))


@dataclass(frozen=True)
class AccuracyParams:
    axis: int = param(integer(lo=1), 1, "the class axis; 2 for T×N×V sequence scores", caffe="axis")


@registry.layers.register("Accuracy")
class AccuracyLayer(_Accumulating):
    """Fraction of rows whose arg-max over axis 1 equals the label, accumulated over every batch since
    ``reset_statistics`` (a whole test epoch during validation).  An optional top receives the accuracy
    of the current batch."""

    caffe_type, caffe_message = "Accuracy", "accuracy_param"

    Params = AccuracyParams
    n_bottoms = (2, 2)
    n_tops = (0, 1)
    differentiable = False
    stat_name = "accuracy"

    def setup(self, bottoms):
        self.bottoms = bottoms
        pred, label = bottoms
        if pred.data.ndim < 2:
            raise self.shape_error(f"bottom '{pred.name}' has shape {fmt_shape(pred.shape)}, expected N×K scores")
        self.dims = _check_labels(self, pred, label, self.p.axis)
        n, c, s = self.dims
        self.rows, self.places = _per_example(self, n, s)
        self.x_buf = self.contiguous_buffer(pred)
        self.lab_buf = self.contiguous_buffer(label)
        self.reset_statistics()
        return [(1,)]

    def forward(self):
        n, c, s = self.dims
        label, x = self.bottoms[1], self.bottoms[0].data
        if self.lab_buf is not None:
            self.be.copy(label.data, self.lab_buf)
        lab = _labels_or_raise(self, label, c, n, s, self.lab_buf)
        if self.x_buf is not None:
            self.be.copy(x, self.x_buf)
            x = self.x_buf
        k = self.ctx.valid_rows(self.rows)
        count = n if k == self.rows else k            # the valid rows of an N-first blob, else all places
        hits = self.be.count_correct(x.reshape(n, c, s), lab, count)
        self.acc_sum += hits * self.rows / (n * s) if k == self.rows else hits / s
        self.acc_count += k
        if self.tops:
            self.be.fill(self.tops[0].data, hits / (count * s))

    def backward(self):
        pass
