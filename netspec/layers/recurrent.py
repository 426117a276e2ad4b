"""Recurrent layers over time-major sequences: RNN (Elman, Flux's ``Recurrent``) and LSTM.

Bottoms: ``x`` of shape T×N×D (T steps of N sequences; the examples lie on axis 1) and, optionally,
``cont`` of shape T×N (Caffe's convention: 0 where a sequence starts, 1 where it continues); top: T×N×H.

    RNN:   h_t = act(W x_t + U (cont_t · h_{t−1}) + b)                     act = tanh (or relu)
    LSTM:  [i f o g]_t = W x_t + U (cont_t · h_{t−1}) + b,   gates in that order (Caffe's)
           i, f, o = σ(·) (f's pre-activation plus ``forget_bias``),   g = act(·)
           c_t = f ⊙ (cont_t · c_{t−1}) + i ⊙ g,     h_t = o ⊙ act(c_t)

W has shape (H, D) for the RNN and (4H, D) for the LSTM, rows in gate order i, f, o, g; U is (H, H) or
(4H, H); b is (H,) or (4H,).  With ``carry: true`` (default) the last step's h (and c) start the next batch —
truncated back-propagation through time, as char-rnn trains — and ``cont`` can cut a sequence anywhere;
the state is reset at every validation pass and kept in snapshots.  No gradient flows into the carried state.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import registry
from ..config.fields import boolean, choice, integer, number, param
from ..config.fillers import Filler, filler
from .base import Layer, fmt_shape


@dataclass(frozen=True)
class RecurrentParams:
    output_dim: int = param(integer(lo=1), doc="H: size of the hidden state", caffe="num_output")
    weight_init: object = param(filler, Filler("xavier"), "filler of W and U")
    bias_init: object = param(filler, Filler("constant"), "filler of b")
    cell: str = param(choice("tanh", "relu"), "tanh", "activation of the state (LSTM: of g and of the cell)")
    carry: bool = param(boolean(), True, "carry the last state into the next batch (truncated BPTT)")


@dataclass(frozen=True)
class LSTMParams(RecurrentParams):
    forget_bias: float = param(number(), 0.0, "added to the forget gate's pre-activation (TensorFlow: 1.0)")


class _Recurrent(Layer):
    kind = "rnn"
    n_bottoms = (1, 2)
    nondiff_bottoms = (1,)
    batch_axis = 1
    state_rows = True          # the carried state has a row per sequence

    def setup(self, bottoms):
        self.bottoms = bottoms
        x = bottoms[0]
        if x.data.ndim != 3:
            raise self.shape_error(f"bottom '{x.name}' has shape {fmt_shape(x.shape)}, expected T×N×D "
                                   "(time-major sequences)")
        t, n, d = x.shape
        if len(bottoms) > 1 and tuple(bottoms[1].shape) != (t, n):
            raise self.shape_error(f"bottom '{bottoms[1].name}' (cont) has shape {fmt_shape(bottoms[1].shape)}, "
                                   f"expected T×N = {t}×{n} like '{x.name}'")
        h, width = self.p.output_dim, self.p.output_dim * (4 if self.kind == "lstm" else 1)
        self.w = self.add_param("weight", (width, d), self.p.weight_init)
        self.u = self.add_param("recurrent", (width, h), self.p.weight_init)
        self.b = self.add_param("bias", (width,), self.p.bias_init)
        self.plan = self.be.recurrent_plan(self.kind, t, n, d, h, self.dtype, self.p.cell,
                                           getattr(self.p, "forget_bias", 0.0))
        return [(t, n, h)]

    def _cont(self):
        return self.bottoms[1].data if len(self.bottoms) > 1 else None

    def one_replica(self):
        if getattr(self.be, "recurrence_holds_gil", False):
            return "runs its steps as small array operations that hold the GIL (replicas would take turns)"
        return None

    def forward(self):
        y = self.tops[0].data
        self.be.recurrent_forward(self.plan, self.bottoms[0].data, self._cont(), self.w.data, self.u.data,
                                  self.b.data, y)
        if self.p.carry:
            self.be.recurrent_carry(self.plan, y)

    def backward(self):
        x = self.bottoms[0]
        self.be.recurrent_backward(self.plan, x.data, self._cont(), self.w.data, self.u.data, self.tops[0].data,
                                   self.tops[0].diff, self.w.diff, self.u.diff, self.b.diff,
                                   x.diff if self.propagate_down[0] else None)

    def reset_state(self):
        """Start from a zero state (every validation pass, and between gradient-check evaluations)."""
        self.be.recurrent_reset(self.plan)

    def state(self):
        st = {"h": self.be.to_host(self.plan.h0).copy()}
        if self.kind == "lstm":
            st["c"] = self.be.to_host(self.plan.c0).copy()
        return st

    def set_state(self, state):
        for key, buf in (("h", self.plan.h0), ("c", self.plan.c0)):
            if buf is None:
                continue
            if key not in state or tuple(state[key].shape) != tuple(buf.shape):
                raise ValueError(f"layer '{self.name}': carried state '{key}' is missing or has the wrong shape")
            self.be.copy(self.be.from_host(state[key], self.dtype), buf)


@registry.layers.register("RNN")
class RNNLayer(_Recurrent):
    """h_t = act(W x_t + U (cont_t · h_{t−1}) + b) over T×N×D sequences (Elman; Flux's Recurrent)."""

    Params = RecurrentParams
    kind = "rnn"


@registry.layers.register("LSTM")
class LSTMLayer(_Recurrent):
    """Long short-term memory over T×N×D sequences: gates i, f, o, g, a cell state, optional ``cont``."""

    Params = LSTMParams
    kind = "lstm"
