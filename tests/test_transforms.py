"""Data transformers: values, train-only randomness, resumable determinism, kernels against numpy."""
import h5py
import numpy as np
import pytest

from netspec.backend import cpu
from netspec.config.errors import SpecError
from netspec.net.net import Net
from netspec.config.spec import parse_spec

F32 = np.float32


def net(transforms, phase="train", n=8, c=3, hw=6, batch=4, seed=3):
    r = np.random.default_rng(0)
    x = r.uniform(0, 255, (n, c, hw, hw)).round()
    spec = parse_spec({"seed": seed, "layers": [
        {"name": "d", "type": "MemoryData", "batch_size": batch, "tops": ["data", "label"],
         "data": {"data": [[0]], "label": [0]}, "transforms": transforms}]})
    spec = spec.with_layer("d", data={"data": x, "label": np.zeros(n)})
    return Net(spec, phase), x


def first_batch(transforms, **kw):
    n, x = net(transforms, **kw)
    n.forward()
    return n.blobs["data"].data.copy(), x[:n.batch_size], n


def test_scale_mean_std_values(tmp_path):
    out, x, _ = first_batch([{"type": "scale", "factor": 0.5}])
    np.testing.assert_allclose(out, x * 0.5, rtol=1e-6)
    out, x, _ = first_batch([{"type": "mean", "values": [1, 2, 3]}, {"type": "std", "values": [2, 4, 8]}])
    np.testing.assert_allclose(out, (x - np.array([1, 2, 3])[:, None, None]) / np.array([2, 4, 8])[:, None, None], rtol=1e-6)
    img = np.arange(3 * 6 * 6, dtype=F32).reshape(3, 6, 6)
    with h5py.File(tmp_path / "mean.h5", "w") as f:
        f["mean"], f["channel_mean"], f["channel_std"] = img, np.array([1, 2, 3], F32), np.array([2, 2, 2], F32)
    out, x, _ = first_batch([{"type": "mean", "file": str(tmp_path / "mean.h5")}])
    np.testing.assert_allclose(out, x - img, rtol=1e-6)
    out, x, _ = first_batch([{"type": "mean", "file": str(tmp_path / "mean.h5"), "per_channel": True},
                             {"type": "std", "file": str(tmp_path / "mean.h5")}])
    np.testing.assert_allclose(out, (x - np.array([1, 2, 3])[:, None, None]) / 2, rtol=1e-6)


def test_random_transforms_only_in_training():
    aug = [{"type": "mirror"}, {"type": "crop", "pad": 2}, {"type": "rotate", "degrees": 10}]
    test_out, x, _ = first_batch(aug, phase="test")
    np.testing.assert_array_equal(test_out, x)
    train_out, x, _ = first_batch(aug)
    assert not np.array_equal(train_out, x)


def test_mirror_flips_about_half():
    out, x, _ = first_batch([{"type": "mirror"}], n=400, batch=400)
    flipped = np.array([np.array_equal(o, xx[:, :, ::-1]) for o, xx in zip(out, x)])
    same = np.array([np.array_equal(o, xx) for o, xx in zip(out, x)])
    assert (flipped | same).all() and 0.4 < flipped.mean() < 0.6


def test_augmentation_is_a_function_of_the_data_cursor():
    aug = [{"type": "mirror"}, {"type": "crop", "pad": 1}, {"type": "rotate", "degrees": 20}]
    a, _ = net(aug, seed=5)
    batches = []
    for _ in range(5):
        a.forward()
        batches.append(a.blobs["data"].data.copy())
    b, _ = net(aug, seed=5)
    b.forward()
    b.forward()
    state = b.data_layers[0].state()
    c, _ = net(aug, seed=5)
    c.data_layers[0].set_state(state)
    for want in batches[2:]:
        c.forward()
        np.testing.assert_array_equal(c.blobs["data"].data, want)
    d, _ = net(aug, seed=6)
    d.forward()
    assert not np.array_equal(d.blobs["data"].data, batches[0])


def test_kernels_against_numpy(rng):
    x = rng.standard_normal((3, 2, 5, 5)).astype(F32)
    y = x.copy()
    cpu.mirror_images(y, np.array([True, False, True]))
    np.testing.assert_array_equal(y, np.stack([x[0, :, :, ::-1], x[1], x[2, :, :, ::-1]]))
    y = x.copy()
    shift = np.array([[1, -2], [0, 0], [-1, 1]])
    cpu.pad_crop_images(y, shift, np.empty((2, 5, 5), F32))
    for n in range(3):
        p = np.pad(x[n], ((0, 0), (2, 2), (2, 2)))
        dy, dx = shift[n]
        np.testing.assert_array_equal(y[n], p[:, 2 + dy:7 + dy, 2 + dx:7 + dx])
    y = x.copy()
    cpu.rotate_images(y, np.array([0.0, np.pi / 2, np.pi]), np.empty((2, 5, 5), F32))
    np.testing.assert_allclose(y[0], x[0], atol=1e-6)
    np.testing.assert_allclose(y[1], np.rot90(x[1], k=-1, axes=(1, 2)), atol=1e-5)   # positive = clockwise
    np.testing.assert_allclose(y[2], x[2, :, ::-1, ::-1], atol=1e-5)


def test_transform_errors():
    base = "layers:\n  - {name: d, type: MemoryData, batch_size: 1, tops: [x], data: {x: [[[[1]]]]}, transforms: %s}\n"
    for text, msg in (("[{type: mirorr}]", "d.yaml:2: layers -> d -> transforms: #1: unknown transform 'mirorr' "
                                          "(did you mean 'mirror'?)"),
                      ("[{type: crop, pad: 0}]", "#1: crop -> pad: must be at least 1, got 0"),
                      ("[{type: mean, values: [1], file: m.h5}]", "#1: mean: give 'file:' or 'values:', one of them"),
                      ("[{type: rotate, degres: 5}]", "#1: transform 'rotate' has no parameter 'degres' (did you mean 'degrees'?)")):
        with pytest.raises(SpecError) as info:
            parse_spec(base % text, "d.yaml")
        assert msg in str(info.value)
    with pytest.raises(Exception, match="transform mean: 2 values for 1 channels"):
        Net(parse_spec(base % "[{type: mean, values: [1, 2]}]", "d.yaml"))
