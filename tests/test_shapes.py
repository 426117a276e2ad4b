"""Shape inference at build time, and its errors (layer, bottom, expected vs actual)."""
import numpy as np
import pytest

from netspec.config.errors import ShapeError
from netspec.net.net import Net
from netspec.config.spec import parse_spec

IMG = "{name: d, type: MemoryData, batch_size: 2, tops: [x, y], data: {x: [[[[1, 2, 3, 4, 5, 6]]], [[[1, 2, 3, 4, 5, 6]]]], y: [0, 1]}}"


def net(body):
    return Net(parse_spec("layers:\n  - " + IMG + "\n" + body, "s.yaml"))


def test_shapes_flow_through_the_net():
    n = net("""\
  - {name: r, type: Reshape, shape: [0, 1, 2, 3], bottoms: [x], tops: [img]}
  - {name: c, type: Convolution, n_filter: 4, kernel: [2, 2], pad: [1, 0], bottoms: [img], tops: [c]}
  - {name: p, type: Pooling, kernel: 2, stride: 2, bottoms: [c], tops: [p]}
  - {name: f, type: Flatten, bottoms: [p], tops: [f]}
  - {name: cat, type: Concat, bottoms: [f, f], tops: [cat]}
  - {name: ip, type: InnerProduct, output_dim: 7, bottoms: [cat], tops: [ip]}
""")
    assert n.blobs["x"].shape == (2, 1, 1, 6)
    assert n.blobs["img"].shape == (2, 1, 2, 3)
    assert n.blobs["c"].shape == (2, 4, 3, 2)
    assert n.blobs["p"].shape == (2, 4, 2, 1)
    assert n.blobs["cat"].shape == (2, 16)
    assert n.layer("ip").params[0].shape == (7, 16)


def test_shape_errors_name_layer_bottom_and_shapes():
    with pytest.raises(ShapeError, match=r"^s.yaml:3: layers -> c \(Convolution\): bottom 'y' has shape 2, "
                                         r"expected N×C×H×W \(4 axes\)$"):
        net("  - {name: c, type: Convolution, n_filter: 2, kernel: 1, bottoms: [y], tops: [c]}\n")
    with pytest.raises(ShapeError, match=r"layers -> c \(Convolution\): kernel 3×3 does not fit bottom 'x' of 1×6"):
        net("  - {name: c, type: Convolution, n_filter: 2, kernel: 3, bottoms: [x], tops: [c]}\n")
    with pytest.raises(ShapeError, match=r"layers -> cat \(Concat\): bottom 'y' 2 does not match 'x' 2×1×1×6 outside axis 1"):
        net("  - {name: cat, type: Concat, bottoms: [x, y], tops: [c]}\n")
    with pytest.raises(ShapeError, match=r"layers -> l \(SoftmaxLoss\): bottom 'x' has shape 2×1×1×6; expected one "
                                         r"label per row of 'y2' 2×2 \(N=2\)"):
        net("  - {name: ip, type: InnerProduct, output_dim: 2, bottoms: [x], tops: [y2]}\n"
            "  - {name: l, type: SoftmaxLoss, bottoms: [y2, x]}\n")
    with pytest.raises(ShapeError, match=r"layers -> r \(Reshape\): cannot reshape 2×1×1×6 \(12 values\) to 5×5"):
        net("  - {name: r, type: Reshape, shape: [5, 5], bottoms: [x], tops: [r]}\n")
    with pytest.raises(ShapeError, match=r"layers -> e \(ElementWise\): bottom 'y' 2 differs from 'x' 2×1×1×6"):
        net("  - {name: e, type: ElementWise, bottoms: [x, y], tops: [e]}\n")
    with pytest.raises(ShapeError, match=r"layers -> ip \(InnerProduct\): weight_init: explicit values have shape "
                                         r"\[2\], the parameter needs \[3, 6\]"):
        net("  - {name: ip, type: InnerProduct, output_dim: 3, weight_init: [1, 2], bottoms: [x], tops: [z]}\n")


def test_blobs_are_float32_and_allocated_once():
    n = net("  - {name: ip, type: InnerProduct, output_dim: 3, bottoms: [x], tops: [z]}\n"
            "  - {name: l, type: SoftmaxLoss, bottoms: [z, y]}\n")
    arrays = [n.blobs["z"].data, n.blobs["z"].diff, n.layer("ip").params[0].data]
    assert all(a.dtype == np.float32 for a in arrays)
    ids = [id(a) for a in arrays]
    for _ in range(3):
        n.forward()
        n.backward()
    assert [id(n.blobs["z"].data), id(n.blobs["z"].diff), id(n.layer("ip").params[0].data)] == ids
