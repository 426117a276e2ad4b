"""Sequences end to end: the SequenceData layer (streams, windows, cont, cursor), the LSTM "hihello" of the
TensorFlow article, and a character model resumed mid-epoch with its carried state, bit-exact."""
import os

import numpy as np
import pytest

import netspec
from netspec.config.spec import parse_spec
from netspec.net.net import Net
from netspec.net.runner import Runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = "the quick brown fox jumps over the lazy dog. " * 8


def seq_net(mode, n=3, t=5):
    return parse_spec(f"""
seed: 2
layers:
  - {{name: d, type: SequenceData, text: "{TEXT}", batch_size: {n}, seq_len: {t}, mode: {mode},
     tops: [x, cont, y]}}
  - {{name: h, type: OneHot, n_class: 28, bottoms: [x], tops: [x1]}}
""", "s.yaml")


def test_streams_advance_each_stream_and_mark_only_the_epochs_start():
    vocab = sorted(set(TEXT))
    with Net(seq_net("streams")) as net:
        src = net.data_layers[0]
        L = (len(TEXT) - 1) // 3
        seen = []
        for b in range(src.batches_per_epoch + 1):
            net.forward()
            x, c, y = (net.blobs[k].data.astype(int) for k in ("x", "cont", "y"))
            assert x.shape == (5, 3)
            seen.append(x)
            np.testing.assert_array_equal(c[0], [0, 0, 0] if b in (0, src.batches_per_epoch) else [1, 1, 1])
            assert c[1:].all()
            np.testing.assert_array_equal(x[1:], y[:-1])                      # targets are the next characters
        stream0 = "".join(vocab[i] for i in np.concatenate([s[:, 0] for s in seen[:-1]]))
        assert TEXT.startswith(stream0) and len(stream0) == src.batches_per_epoch * 5
        stream1 = "".join(vocab[i] for i in np.concatenate([s[:, 1] for s in seen[:-1]]))
        assert TEXT[L:].startswith(stream1)
        assert net.epoch == 1


def test_windows_are_random_places_each_starting_a_sequence():
    with Net(seq_net("windows")) as net:
        net.forward()
        a = net.blobs["x"].data.copy()
        assert not net.blobs["cont"].data[0].any() and net.blobs["cont"].data[1:].all()
        net.forward()
        assert not np.array_equal(a, net.blobs["x"].data)


def test_a_split_over_threads_reads_the_same_columns():
    with Net(seq_net("streams", n=4), runner=Runner(threads=2)) as two, \
            Net(seq_net("streams", n=4), runner=Runner(threads=1)) as one:
        assert two.axis["x"] == 1 and two.replicas[1].blobs["x"].shape == (5, 2)
        assert two.axis["x1"] == 1 and two.replicas[1].blobs["x1"].shape == (5, 2, 28)
        two.forward()
        one.forward()
        np.testing.assert_array_equal(two.blobs["x"].data, one.blobs["x"].data)
        np.testing.assert_array_equal(two.blobs["x1"].data, one.blobs["x1"].data)


def test_lstm_hihello_reads_ihello_within_50_iterations(tmp_path):
    solver = netspec.train(os.path.join(ROOT, "configs", "lstm_hihello.yaml"), out_dir=str(tmp_path),
                           log=lambda m: None)
    assert solver.iteration == 50
    net = solver.train_net
    net.forward()
    assert "".join("hielo"[int(i)] for i in net.blobs["scores"].data.argmax(-1)[:, 0]) == "ihello"


CHAR = f"""
name: char
seed: 3
layers:
  - {{name: d, type: SequenceData, text: "{TEXT}", batch_size: 4, seq_len: 6, tops: [x, cont, y]}}
  - {{name: emb, type: Embed, input_dim: 28, output_dim: 8, bottoms: [x], tops: [e]}}
  - {{name: lstm, type: LSTM, output_dim: 12, bottoms: [e, cont], tops: [h]}}
  - {{name: drop, type: Dropout, ratio: 0.2, bottoms: [h], tops: [h]}}
  - {{name: fc, type: InnerProduct, output_dim: 28, axis: 2, bottoms: [h], tops: [s]}}
  - {{name: loss, type: SoftmaxLoss, axis: 2, bottoms: [s, y]}}
solver: {{method: rmsprop, max_iter: 24, lr_policy: 0.01, clip_gradients: 5}}
coffee_breaks: [{{type: TrainingSummary, every_n_iter: 4}}, {{type: Snapshot, every_n_iter: 8}}]
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_a_character_model_resumes_mid_epoch_bit_exactly(tmp_path, monkeypatch, threads):
    monkeypatch.setenv("NETSPEC_THREADS", str(threads))
    assert len(sorted(set(TEXT))) == 28
    (tmp_path / "char.yaml").write_text(CHAR)
    path = str(tmp_path / "char.yaml")
    straight = netspec.train(path, out_dir=str(tmp_path / "a"), log=lambda m: None)
    assert straight.train_net.data_layers[0].batch not in (0,)                     # mid-epoch
    netspec.train(path, out_dir=str(tmp_path / "b"), log=lambda m: None, overrides=["solver.max_iter=10"])
    resumed = netspec.train(path, out_dir=str(tmp_path / "b"), log=lambda m: None, resume="latest")
    assert resumed.start_iteration == 10
    for p, q in zip(straight.train_net.params, resumed.train_net.params):
        np.testing.assert_array_equal(p.data, q.data, err_msg=p.key)
    curves = netspec.read_statistics(str(tmp_path / "a" / "statistics.h5"))["train/loss"][1]
    assert curves[-1] < curves[0]                                                  # it learns


def test_sampling_is_reproducible_by_seed_and_starts_from_the_prime(tmp_path):
    from click.testing import CliRunner

    from netspec.tools.cli import main
    (tmp_path / "char.yaml").write_text(CHAR.replace("{type: Snapshot, every_n_iter: 8}",
                                                     "{type: Snapshot, every_n_iter: 8}, {type: Sample, every_n_iter: 24, "
                                                     "length: 30, prime: the}"))
    log = []
    netspec.train(str(tmp_path / "char.yaml"), out_dir=str(tmp_path / "r"), log=log.append)
    shown = [m for m in log if m.startswith("sample at iter 24:\nthe")]
    assert len(shown) == 1 and len(shown[0].split("\n", 1)[1]) == 33
    snap = str(tmp_path / "r" / "snapshot-24.h5")
    a = netspec.sample(str(tmp_path / "char.yaml"), snap, length=40, prime="the ", seed=5, temperature=0.8)
    b = netspec.sample(str(tmp_path / "char.yaml"), snap, length=40, prime="the ", seed=5, temperature=0.8)
    c = netspec.sample(str(tmp_path / "char.yaml"), snap, length=40, prime="the ", seed=6, temperature=0.8)
    assert a == b and a != c and a.startswith("the ") and len(a) == 44 and set(a) <= set(TEXT)
    res = CliRunner().invoke(main, ["sample", str(tmp_path / "char.yaml"), "--weights", snap, "--length", "40",
                                    "--prime", "the ", "--seed", "5", "--temperature", "0.8"])
    assert res.exit_code == 0 and res.output.rstrip("\n") == a
    res = CliRunner().invoke(main, ["sample", str(tmp_path / "char.yaml"), "--weights", snap, "--prime", "THE"])
    assert res.exit_code == 1 and "error: prime: characters 'EHT' are not in the model's vocabulary" in res.output


def test_ignored_labels_count_for_nothing_and_per_symbol_figures():
    import math

    from netspec.testing import make_layer
    r = np.random.default_rng(0)
    x = r.standard_normal((3, 2, 4))
    lab = np.array([[0, -1], [3, 1], [-1, 2]], float)
    layer = make_layer("SoftmaxLoss", {"axis": 2, "ignore_label": -1, "per_symbol": True}, [x, lab])
    layer.forward()
    z = x - x.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    keep = lab != -1
    want = -sum(logp[t, n, int(lab[t, n])] for t in range(3) for n in range(2) if keep[t, n]) / 6
    assert layer.loss == pytest.approx(want, rel=1e-9)
    stats = layer.derived_statistics({"softmaxloss/loss": 1.5})
    assert stats == {"softmaxloss/bits": pytest.approx(1.5 / math.log(2)),
                     "softmaxloss/perplexity": pytest.approx(math.exp(1.5))}
