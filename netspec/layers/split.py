"""Split: one blob read by several layers (inserted automatically by the graph)."""
from __future__ import annotations

from ..config import registry
from .activation import NoParams
from .base import Layer


@registry.layers.register("Split")
class SplitLayer(Layer):
    """Feeds one blob to several layers: every top *shares* the bottom's data (no copy); backward sums the
    tops' gradients.  Inserted automatically wherever a blob is read by more than one layer."""

    caffe_type = "Split"

    Params = NoParams
    n_tops = (1, None)
    shares_data = True

    def setup(self, bottoms):
        self.bottoms = bottoms
        return [bottoms[0].shape] * len(self.spec.tops)

    def forward(self):
        pass

    def backward(self):
        if not self.propagate_down[0]:
            return
        dx = self.bottoms[0].diff
        diffs = [t.diff for t in self.tops if t.diff is not None]
        if not diffs:
            self.be.fill(dx, 0.0)
            return
        self.be.copy(diffs[0], dx)
        for d in diffs[1:]:
            self.be.add(dx, d, dx)
