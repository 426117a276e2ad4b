"""`netspec import caffe`: Caffe's example nets and solvers become configs that validate and train, weights in
both caffemodel formats become snapshots (read from bytes the protobuf library wrote, not only our own), and
whatever cannot be imported is listed at once with the prototxt's lines."""
import os

import h5py
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from netspec.config.errors import SpecError
from netspec.interchange.caffe import (ImportProblems, import_caffe, import_net, read_caffemodel, translation_markdown,
                                       write_caffemodel)
from netspec.interchange.protobuf import parse_text
from netspec.tools.cli import main

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures", "caffe")
ROOT = os.path.dirname(HERE)
MNIST_MAP = {"examples/mnist/mnist_train_lmdb": "data/mnist/train.txt",
             "examples/mnist/mnist_test_lmdb": "data/mnist/test.txt"}


def fix(name):
    return os.path.join(FIX, name)


def write_mnist_like(folder, n=64, seed=0, scale=256):
    """Tiny data of MNIST's shape: images whose label is the quadrant holding a bright square; pixels
    0..``scale`` (256: raw, as a Caffe database holds them; 1: as `netspec data mnist` writes them)."""
    r = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for split, rows in (("train", n), ("test", n // 2)):
        y = r.integers(0, 4, rows)
        x = r.uniform(0, 0.2, (rows, 1, 28, 28)).astype(np.float32)
        for i, q in enumerate(y):
            x[i, 0, (q // 2) * 14 + 3:(q // 2) * 14 + 11, (q % 2) * 14 + 3:(q % 2) * 14 + 11] = 1.0
        with h5py.File(os.path.join(folder, f"{split}.h5"), "w") as f:
            f["data"], f["label"] = x * scale, y.astype(np.float32)
        with open(os.path.join(folder, f"{split}.txt"), "w") as fh:
            fh.write(f"{split}.h5\n")


def run(*args, code=0):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == code, res.output
    return res.output


def test_lenet_imports_as_the_gallery_config():
    got = import_net(fix("lenet_train_test.prototxt"), fix("lenet_solver.prototxt"), MNIST_MAP).spec
    want = __import__("netspec").load_spec(os.path.join(ROOT, "configs", "mnist_lenet.yaml"))
    # the gallery writes relu1 as `neuron: relu` on ip1
    assert sorted(ls.type for ls in got.layers if ls.type != "ReLU") == sorted(ls.type for ls in want.layers)
    by_name = {ls.name: ls for ls in got.layers}
    for ls in want.layers:
        if ls.type in ("Convolution", "InnerProduct", "Pooling"):
            g = by_name[ls.name].params
            for f in ("n_filter", "kernel", "stride", "pad", "output_dim", "bias_lr", "weight_lr", "method"):
                if hasattr(ls.params, f):
                    assert getattr(g, f) == getattr(ls.params, f), (ls.name, f)
    assert got.solver.lr_policy == want.solver.lr_policy
    assert got.solver.mom_policy == want.solver.mom_policy and got.solver.regu_coef == want.solver.regu_coef
    assert got.solver.max_iter == 10000
    assert [(c.type_name, c.every_n_iter) for c in got.coffee_breaks] == \
        [("TrainingSummary", 100), ("ValidationPerformance", 500), ("Snapshot", 5000)]


def test_imported_lenet_trains_and_tests(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_mnist_like("data/mnist")
    out = run("import", "caffe", fix("lenet_train_test.prototxt"), "--solver", fix("lenet_solver.prototxt"),
              "--out", "imported", *sum((["--data", f"{k}={v}"] for k, v in MNIST_MAP.items()), []))
    assert "config: imported/lenet.yaml" in out
    out = run("train", "imported/lenet.yaml", "--out", "run", "--set", "solver.max_iter=40",
              "--set", "coffee_breaks.1.every_n_iter=40")
    acc = float(out.split("accuracy/accuracy = ")[-1].split()[0].rstrip("%")) / 100
    assert acc > 0.5, out                       # four quadrants: chance is 0.25
    assert "accuracy" in run("test", "imported/lenet.yaml", "--weights", "run/snapshot-40.h5")


def test_everything_unsupported_is_listed_at_once_with_its_line(tmp_path):
    net = tmp_path / "bad.prototxt"
    net.write_text("""name: "bad"
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "c" type: "Convolution" bottom: "data" top: "c"
        convolution_param { num_output: 4 kernel_size: 3 group: 2 } }
layer { name: "p" type: "Pooling" bottom: "c" top: "p" pooling_param { pool: STOCHASTIC kernel_size: 2 } }
layer { name: "w" type: "WindowData" top: "x" }
layer { name: "f" type: "InnerProduct" bottom: "p" top: "f"
        inner_product_param { num_output: 3 weight_filler { type: "bilinear" } } }
""")
    with pytest.raises(ImportProblems) as exc:
        import_net(str(net))
    lines = str(exc.value).splitlines()
    assert len(lines) == 4, lines
    assert lines[0].startswith(f"{net}:4: layer 'c' (Convolution): convolution_param group is not supported")
    assert lines[1].startswith(f"{net}:5: layer 'p': pool: STOCHASTIC is not supported (netspec has MAX, AVE)")
    assert lines[2].startswith(f"{net}:6: layer 'w': Caffe type 'WindowData' has no netspec counterpart")
    assert lines[3].startswith(f"{net}:8: layer 'f': weight_filler: filler 'bilinear' has no netspec counterpart")
    out = run("import", "caffe", net, "--out", tmp_path / "o", code=1)
    assert out.count("error: ") == 4 and "Traceback" not in out


def test_a_bad_value_names_the_prototxt_line(tmp_path):
    net = tmp_path / "n.prototxt"
    net.write_text('layer { name: "in" type: "Input" top: "d" input_param { shape { dim: 1 dim: 4 } } }\n'
                   'layer { name: "ip" type: "InnerProduct" bottom: "d" top: "y"\n'
                   '        inner_product_param { num_output: 0 } }\n')
    with pytest.raises(SpecError, match=rf"{net}:3: layers -> ip -> output_dim: must be at least 1, got 0"):
        import_net(str(net))


def test_a_malformed_prototxt_is_one_line(tmp_path):
    net = tmp_path / "m.prototxt"
    net.write_text('layer { name: "a" type: "ReLU"\n  bottom: "x" top: "x" \n')
    with pytest.raises(ImportProblems, match=rf"{net}:1: the message opened here is not closed"):
        import_net(str(net))


def test_autoencoder_keeps_the_solvers_last_test_stage_and_says_what_it_left_out():
    imp = import_net(fix("mnist_autoencoder.prototxt"), fix("mnist_autoencoder_solver.prototxt"), MNIST_MAP)
    sources = [(ls.phase, ls.params.source) for ls in imp.spec.layers if ls.type == "HDF5Data"]
    assert sources == [("train", "data/mnist/train.txt"), ("test", "data/mnist/test.txt")]
    assert any("stage test-on-train" in n for n in imp.notes)
    enc = imp.spec.layer("encode1").params
    assert enc.weight_init.type == "gaussian" and enc.weight_init.std == 1.0 and enc.weight_init.sparse == 15
    assert (enc.bias_lr, enc.bias_decay) == (1.0, 0.0)
    assert imp.spec.layer("loss").type == "SigmoidCrossEntropyLoss"
    assert imp.spec.layer("loss-2").type == "SquareLoss" and imp.spec.layer("loss-2").params.weight == 0
    assert imp.spec.solver.lr_policy.stepsize == 10000


def test_autoencoder_and_cifar10_full_train_a_few_iterations(tmp_path, monkeypatch):
    from test_datasets import fake_batches, write_binary
    monkeypatch.chdir(tmp_path)
    write_mnist_like("data/mnist")
    write_binary(tmp_path / "raw", fake_batches(rows=12))
    run("data", "cifar10", "--from", "raw")
    maps = MNIST_MAP | {"examples/cifar10/cifar10_train_lmdb": "data/cifar10/train.txt",
                        "examples/cifar10/cifar10_test_lmdb": "data/cifar10/test.txt",
                        "examples/cifar10/mean.binaryproto": "data/cifar10/mean.h5"}
    for net, solver in (("mnist_autoencoder", "mnist_autoencoder_solver"), ("cifar10_full_train_test", "cifar10_full_solver")):
        done = import_caffe(fix(net + ".prototxt"), "imp", fix(solver + ".prototxt"), data_map=maps)
        out = run("train", done["config"], "--out", f"run-{net}", "--set", "solver.max_iter=6",
                  "--set", "coffee_breaks.1.every_n_iter=3")
        assert "validation at iter 6" in out, out


def test_mean_binaryproto_becomes_a_mean_h5(tmp_path, monkeypatch):
    from netspec.interchange import protobuf as pb
    monkeypatch.chdir(tmp_path)
    mean = np.random.default_rng(0).uniform(0, 255, (1, 3, 32, 32)).astype(np.float32)
    os.makedirs("examples/cifar10")
    blob = b"".join(pb.put_varint(k, v) for k, v in zip((1, 2, 3, 4), mean.shape)) + pb.put_floats(5, mean.ravel())
    open("examples/cifar10/mean.binaryproto", "wb").write(blob)
    maps = {"examples/cifar10/cifar10_train_lmdb": "t.txt", "examples/cifar10/cifar10_test_lmdb": "v.txt"}
    imp = import_net(fix("cifar10_quick_train_test.prototxt"), data_map=maps, out_dir="imp")
    tr = imp.spec.layers[0].params.transforms[0]
    with h5py.File(tr["file"], "r") as f:
        np.testing.assert_array_equal(f["mean"][()], mean[0])


# --------------------------------------------------------------------------------------------- weights
def caffe_schema():
    """Caffe's weight messages built with the protobuf library from their public field numbers, so the tests
    read bytes our own encoder did not write."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(name="caffe_min.proto", package="caffe_min", syntax="proto2")

    def msg(name, *fields):
        m = fd.message_type.add(name=name)
        for fname, num, ftype, label, tname, packed in fields:
            f = m.field.add(name=fname, number=num, type=ftype, label=label)
            if tname:
                f.type_name = f".caffe_min.{tname}"
            if packed:
                f.options.packed = True
    R, O = F.LABEL_REPEATED, F.LABEL_OPTIONAL
    msg("BlobShape", ("dim", 1, F.TYPE_INT64, R, None, True))
    msg("BlobProto", ("num", 1, F.TYPE_INT32, O, None, False), ("channels", 2, F.TYPE_INT32, O, None, False),
        ("height", 3, F.TYPE_INT32, O, None, False), ("width", 4, F.TYPE_INT32, O, None, False),
        ("data", 5, F.TYPE_FLOAT, R, None, True), ("shape", 7, F.TYPE_MESSAGE, O, "BlobShape", False),
        ("double_data", 8, F.TYPE_DOUBLE, R, None, True))
    msg("LayerParameter", ("name", 1, F.TYPE_STRING, O, None, False), ("type", 2, F.TYPE_STRING, O, None, False),
        ("bottom", 3, F.TYPE_STRING, R, None, False), ("top", 4, F.TYPE_STRING, R, None, False),
        ("blobs", 7, F.TYPE_MESSAGE, R, "BlobProto", False))
    msg("NetParameter", ("name", 1, F.TYPE_STRING, O, None, False),
        ("layer", 100, F.TYPE_MESSAGE, R, "LayerParameter", False))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe_min.{n}"))
            for n in ("NetParameter", "BlobProto")}


def quick_weights(seed=0):
    r = np.random.default_rng(seed)
    shapes = {"conv1": [(32, 3, 5, 5), (32,)], "conv2": [(32, 32, 5, 5), (32,)], "conv3": [(64, 32, 5, 5), (64,)],
              "ip1": [(64, 1024), (64,)], "ip2": [(10, 64), (10,)]}
    return {k: [r.standard_normal(s).astype(np.float32) * 0.05 for s in v] for k, v in shapes.items()}


def test_the_reader_reads_what_the_protobuf_library_writes(tmp_path):
    schema = caffe_schema()
    w = quick_weights()
    net = schema["NetParameter"](name="CIFAR10_quick")
    for name, arrs in w.items():
        layer = net.layer.add(name=name, type="Convolution" if name.startswith("conv") else "InnerProduct")
        for k, a in enumerate(arrs):
            b = layer.blobs.add()
            if name == "ip1" and k == 0:               # the legacy 4-D form: num, channels, height, width
                b.num, b.channels, b.height, b.width = 1, 1, *a.shape
            else:
                b.shape.dim.extend(a.shape)
            b.data.extend(a.ravel().tolist())
    net.layer.add(name="relu1", type="ReLU")
    path = tmp_path / "quick.caffemodel"
    path.write_bytes(net.SerializeToString())
    got = read_caffemodel(str(path))
    assert got["relu1"] == [] and got["ip1"][0].shape == (1, 1, 64, 1024)
    for name, arrs in w.items():
        for a, b in zip(arrs, got[name]):
            np.testing.assert_array_equal(a, b.reshape(a.shape))
    ours = tmp_path / "ours.caffemodel"            # our encoder writes what the library reads back
    write_caffemodel(str(ours), w)
    back = schema["NetParameter"]()
    back.ParseFromString(ours.read_bytes())
    assert [ly.name for ly in back.layer] == list(w)
    np.testing.assert_array_equal(np.array(back.layer[4].blobs[0].data, np.float32), w["ip2"][0].ravel())
    assert list(back.layer[4].blobs[0].shape.dim) == [10, 64]


@pytest.mark.parametrize("hdf5", [False, True], ids=["binary", "hdf5"])
def test_weights_become_a_snapshot_that_predicts_like_the_weights(tmp_path, monkeypatch, hdf5):
    import netspec
    monkeypatch.chdir(tmp_path)
    w = quick_weights(1)
    model = tmp_path / ("quick.caffemodel.h5" if hdf5 else "quick.caffemodel")
    write_caffemodel(str(model), w, hdf5=hdf5)
    out = run("import", "caffe", fix("cifar10_quick.prototxt"), "--weights", model, "--out", "imp")
    assert "weights: imp/cifar10_quick_test-caffe.h5" in out
    m = netspec.load("imp/cifar10_quick_test.yaml", "imp/cifar10_quick_test-caffe.h5")
    x = np.random.default_rng(2).standard_normal((3, 3, 32, 32)).astype(np.float32)
    prob = m.predict(x)
    assert prob.shape == (3, 10)
    np.testing.assert_allclose(prob.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(prob, reference_quick(x, w), rtol=2e-3, atol=1e-5)


def reference_quick(x, w):
    """cifar10_quick's forward pass in plain float64 numpy (Caffe's ceil-rounded pooling)."""
    def conv(a, wb):
        wt, b = (t.astype(np.float64) for t in wb)
        n, c, h, ww = a.shape
        ap = np.pad(a, ((0, 0), (0, 0), (2, 2), (2, 2)))
        out = np.zeros((n, wt.shape[0], h, ww))
        for i in range(5):
            for j in range(5):
                out += np.einsum("nchw,fc->nfhw", ap[:, :, i:i + h, j:j + ww], wt[:, :, i, j])
        return out + b[None, :, None, None]

    def pool(a, kind):
        n, c, h, ww = a.shape
        oh = -(-(h - 3) // 2) + 1
        out = np.zeros((n, c, oh, oh))
        for i in range(oh):
            for j in range(oh):
                win = a[:, :, 2 * i:min(2 * i + 3, h), 2 * j:min(2 * j + 3, ww)]
                out[:, :, i, j] = win.max(axis=(2, 3)) if kind == "max" else win.sum(axis=(2, 3)) / (
                    (min(2 * i + 3, h + 0) - 2 * i) * (min(2 * j + 3, ww) - 2 * j))
        return out
    a = np.maximum(pool(conv(x.astype(np.float64), w["conv1"]), "max"), 0)
    a = pool(np.maximum(conv(a, w["conv2"]), 0), "ave")
    a = pool(np.maximum(conv(a, w["conv3"]), 0), "ave")
    a = a.reshape(len(x), -1) @ w["ip1"][0].T.astype(np.float64) + w["ip1"][1]
    z = a @ w["ip2"][0].T.astype(np.float64) + w["ip2"][1]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_a_caffemodel_that_is_not_one_is_one_line(tmp_path):
    bad = tmp_path / "x.caffemodel"
    bad.write_bytes(b"\xff\xff\xff\xff not protobuf")
    out = run("import", "caffe", fix("cifar10_quick.prototxt"), "--weights", bad, "--out", tmp_path / "o", code=1)
    assert out.startswith(f"error: {bad}: not a readable caffemodel") and "Traceback" not in out


# ------------------------------------------------------------------------------------------- one source
def test_the_readme_table_is_the_one_the_declarations_make():
    readme = open(os.path.join(ROOT, "README.md")).read()
    block = readme.split("<!-- caffe-table -->\n")[1].split("<!-- /caffe-table -->")[0]
    assert block == translation_markdown(), "regenerate the README's table with `netspec layers --caffe`"


def test_prototxt_text_format_details():
    m = parse_text('a: 1 b: -2.5e-3 c: "x" "y" d: TRUE_ENUM # comment\n e { f: [1, 2] } e: < f: 3 >; g: inf')
    assert m.get("a") == 1 and m.get("b") == -2.5e-3 and m.get("c") == "xy" and m.get("d") == "TRUE_ENUM"
    assert m.all("e")[0].all("f") == [1, 2] and m.all("e")[1].get("f") == 3 and m.get("g") == float("inf")
    assert yaml.safe_load("[1]") == [1]


def test_a_scale_the_data_was_prepared_with_is_not_applied_twice(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_mnist_like("data/mnist", n=8, scale=1)
    for split in ("train", "test"):                  # as `netspec data mnist` records it
        with h5py.File(f"data/mnist/{split}.h5", "a") as f:
            f.attrs["scale"] = 0.00390625
    lenet = import_net(fix("lenet_train_test.prototxt"), data_map=MNIST_MAP)
    assert all(not ls.params.transforms for ls in lenet.spec.layers if ls.type == "HDF5Data")
    assert any("scale left out" in n for n in lenet.notes)
    ae = import_net(fix("mnist_autoencoder.prototxt"), fix("mnist_autoencoder_solver.prototxt"), MNIST_MAP)
    factor = ae.spec.layers[0].params.transforms[0]["factor"]
    assert factor == pytest.approx(0.0039215684 / 0.00390625)        # Caffe's 1/255 on data already × 1/256


def test_a_solver_given_as_the_net_is_one_line(tmp_path):
    out = run("import", "caffe", fix("lenet_solver.prototxt"), "--out", tmp_path / "o", code=1)
    assert out.strip() == (f"error: {fix('lenet_solver.prototxt')}:1: this is a solver file (it has net:); give the "
                           "net's .prototxt as NET and this file with --solver")


def test_ignore_label_says_how_the_normalizations_differ(tmp_path):
    net = tmp_path / "ign.prototxt"
    net.write_text('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
                   'layer { name: "lab" type: "Input" top: "y" input_param { shape { dim: 2 dim: 1 } } }\n'
                   'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "y"\n'
                   '        loss_param { ignore_label: -1 } }\n')
    imp = import_net(str(net))
    assert imp.spec.layer("loss").params.ignore_label == -1
    assert any(n.startswith(f"{net}:3: layer 'loss': with ignore_label Caffe divides") for n in imp.notes)
