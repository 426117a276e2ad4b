"""The update methods at run time, one per method of :mod:`netspec.config.solver`, each built from that
method's frozen parameters.  ``slots`` names the history buffers kept per parameter; the formulas are in the
docstrings of the backend's ``*_update`` operations."""
from __future__ import annotations


class Method:
    slots: tuple = ()

    def __init__(self, params):
        self.params = params

    def update(self, be, w, g, h, lr, mom, decay, l1, it):
        raise NotImplementedError


class SGD(Method):
    slots = ("momentum",)

    def update(self, be, w, g, h, lr, mom, decay, l1, it):
        be.sgd_update(w, g, h[0], lr, mom, decay, l1)


class Nesterov(Method):
    slots = ("momentum",)

    def update(self, be, w, g, h, lr, mom, decay, l1, it):
        be.nesterov_update(w, g, h[0], lr, mom, decay, l1)


class AdaGrad(Method):
    slots = ("sum_sq",)

    def update(self, be, w, g, h, lr, mom, decay, l1, it):
        be.adagrad_update(w, g, h[0], lr, self.params.eps, decay, l1)


class RMSProp(Method):
    slots = ("mean_sq",)

    def update(self, be, w, g, h, lr, mom, decay, l1, it):
        p = self.params
        be.rmsprop_update(w, g, h[0], lr, p.rms_decay, p.eps, decay, l1)


class AdaDelta(Method):
    slots = ("mean_sq", "mean_sq_update")

    def update(self, be, w, g, h, lr, mom, decay, l1, it):
        p = self.params
        be.adadelta_update(w, g, h[0], h[1], lr, p.rho, p.eps, decay, l1)


class Adam(Method):
    slots = ("m", "v")

    def update(self, be, w, g, h, lr, mom, decay, l1, it):
        p = self.params
        be.adam_update(w, g, h[0], h[1], lr, p.beta1, p.beta2, p.eps, it + 1, decay, l1)


METHODS = {"sgd": SGD, "nesterov": Nesterov, "adagrad": AdaGrad, "rmsprop": RMSProp, "adadelta": AdaDelta,
           "adam": Adam}


def make_method(solver_params) -> Method:
    """The run-time update method of a (frozen) ``solver:`` block."""
    return METHODS[solver_params.method](solver_params.options)
