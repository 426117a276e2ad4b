"""Parameters shared by the layers that learn a weight and a bias (Convolution, InnerProduct)."""
from __future__ import annotations

from dataclasses import dataclass

from ..config.fields import boolean, number, param
from ..config.fillers import Filler, filler
from .base import neuron_param, param_names_param


@dataclass(frozen=True, kw_only=True)
class LearnableParams:
    bias: bool = param(boolean(), True, "learn a bias", caffe="bias_term")
    neuron: str | None = neuron_param()
    weight_init: Filler = param(filler, Filler("xavier"), "weight filler; default xavier", caffe="weight_filler",
                           caffe_default={"type": "constant", "value": 0.0})
    bias_init: Filler = param(filler, Filler("constant", value=0.0), "bias filler; default 0", caffe="bias_filler")
    weight_lr: float = param(number(lo=0), 1.0, "learning-rate multiplier of the weight", caffe="param[0].lr_mult")
    bias_lr: float = param(number(lo=0), 1.0, "learning-rate multiplier of the bias", caffe="param[1].lr_mult")
    weight_decay: float = param(number(lo=0), 1.0, "weight-decay multiplier of the weight", caffe="param[0].decay_mult")
    bias_decay: float = param(number(lo=0), 1.0, "weight-decay multiplier of the bias", caffe="param[1].decay_mult")
    param_names: tuple | None = param_names_param()


def add_weight_and_bias(layer, weight_shape, n_out):
    p = layer.p
    w = layer.add_param("weight", weight_shape, p.weight_init, p.weight_lr, p.weight_decay)
    b = layer.add_param("bias", (n_out,), p.bias_init, p.bias_lr, p.bias_decay) if p.bias else None
    return w, b
