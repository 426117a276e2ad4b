"""The ``netspec`` command line: a thin layer over the Python API.

Every error a user can cause is printed as ``error: <one line>`` (one line per problem) with exit status 1;
never a traceback.
"""
from __future__ import annotations

import functools
import os
import sys
import time

from .blas import choose_openblas_coretype

choose_openblas_coretype()          # this process is ours: pick OpenBLAS's kernels before numpy loads

import click  # noqa: E402

from ..config.errors import NetspecError, os_reason  # noqa: E402


def friendly(fn):
    """Turn netspec errors (and a few OS ones) into one-line messages and exit status 1."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NetspecError as exc:
            fail(str(exc).splitlines() or [type(exc).__name__], everywhere=exc.everywhere)
        except BrokenPipeError:            # output piped into e.g. `head`, which stopped reading
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except MemoryError:
            fail(["out of memory; use a smaller batch_size or smaller layers"], everywhere=False)
        except OSError as exc:
            where = getattr(exc, "filename", None)
            fail([f"{where}: {os_reason(exc)}" if where else os_reason(exc)], everywhere=False)
        except KeyboardInterrupt:
            if _several_processes():
                fail(["interrupted"], everywhere=False)
            click.echo("error: interrupted (nothing saved of the unfinished step)", err=True)
            sys.exit(130)
        except BaseException as exc:
            if isinstance(exc, SystemExit) or not _several_processes():
                raise
            import traceback
            traceback.print_exc()
            fail([f"{type(exc).__name__} on this process; stopping every process"], everywhere=False)
    return wrapper


def _several_processes() -> bool:
    from ..net.runner import launched_by_mpi
    return launched_by_mpi()


def fail(lines: list[str], everywhere: bool):
    """Print ``error: ...`` lines and exit 1.  In a run of several processes (mpiexec) rank 0 speaks for an
    error that every process meets at the same point; an error of one process is printed with its rank and
    stops all of them (MPI_Abort), so that none waits for it forever."""
    from ..net.runner import launch_rank, started_world

    if not _several_processes():
        for line in lines:
            click.echo(f"error: {line}", err=True)
        sys.exit(1)
    rank = launch_rank()
    if rank == 0:
        for line in lines:
            click.echo(f"error: {line}", err=True)
    world = started_world()
    if everywhere or world is None or world.size == 1:
        sys.exit(1)
    if rank != 0:
        time.sleep(1.0)              # if rank 0 failed too, it has stopped every process by now
        for line in lines:
            click.echo(f"error: rank {rank}: {line}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    world.abort(1)


def echo_root(msg: str = "", **kw):
    """click.echo on rank 0 only (every process of an mpiexec run computes the same figures)."""
    from ..net.runner import launch_rank
    if launch_rank() == 0:
        click.echo(msg, **kw)


def set_option(help="override a config value"):
    return click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=help)


def backend_option(fn):
    return click.option("--backend", default=None, metavar="NAME",
                        help="backend to run on: cpu (numba + BLAS) or numpy (plain, slow) [default: the "
                             "config's backend:, else cpu]")(fn)


def with_backend(overrides, backend):
    """``--backend NAME`` is the override ``backend=NAME`` (checked and reported like any other)."""
    return tuple(overrides) + ((f"backend={backend}",) if backend else ())


WARMUP_COMMANDS = ("data", "show", "layers", "import", "draw")   # what a new user runs before training


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="netspec")
@click.pass_context
def main(ctx):
    """netspec: declarative neural-network training (Caffe / Mocha.jl style YAML nets, numba CPU backend)."""
    if ctx.invoked_subcommand in WARMUP_COMMANDS:
        from .warmup import start_if_cold
        start_if_cold()           # an empty kernel cache is compiled in the background (tools/warmup.py)


# ------------------------------------------------------------------------------------------------- show
@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--phase", type=click.Choice(["train", "test"]), default="train", show_default=True)
@set_option()
@backend_option
@friendly
def show(config, phase, overrides, backend):
    """Print the layer table of CONFIG: wiring, blob shapes, parameter counts, memory.  Given a snapshot
    (.h5), print where it comes from (netspec version, command, config and overrides) and its arrays."""
    if str(config).endswith(".h5"):
        show_snapshot(str(config))
        return
    from .api import load_spec
    from .report import layer_table

    from ..net.net import build_nets
    spec = load_spec(config, with_backend(overrides, backend))
    from ..net.net import Net
    train, test = build_nets(spec)          # both phases are checked, whichever is shown
    try:
        if phase == "test" and test is None:         # no test-only layer: the test phase is the shared layers
            test = Net(spec, "test", shared=train.shared)
        click.echo(layer_table(test if phase == "test" else train))
    finally:
        train.close()
        if test is not None:
            test.close()


def show_snapshot(path):
    from ..training.snapshot import load
    snap = load(path)
    tree = snap.tree
    click.echo(f"{path}: iteration {snap.iteration}, snapshot format {tree.get('format')}")
    prov = tree.get("provenance", {})
    for key in ("written", "netspec_version", "command", "config", "config_sha256", "overrides"):
        if prov.get(key):
            value = str(prov[key]).replace("\n", "  ")
            click.echo(f"  {key:<15} {value}")
    params = snap.params
    click.echo(f"  parameters      {sum(a.size for a in params.values()):,} in {len(params)} arrays")
    for key, a in params.items():
        click.echo(f"    {key:<24} {'×'.join(map(str, a.shape))}")


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="picture: .svg, .png or .pdf")
@click.option("--phase", type=click.Choice(["train", "test"]), default="train", show_default=True)
@set_option()
@friendly
def draw(config, out, phase, overrides):
    """Draw the net of CONFIG as a graph (a box per layer, an edge per blob) into OUT, via Graphviz."""
    from ..config.spec import load_spec
    from .report import draw as draw_net
    click.echo(draw_net(load_spec(config, overrides), phase, out))


# ----------------------------------------------------------------------------------------------- layers
@main.command()
@click.argument("layer_type", required=False)
@click.option("--caffe", is_flag=True, help="print the Caffe translation table (Markdown)")
@friendly
def layers(layer_type, caffe):
    """List the layer types, or the parameters of LAYER_TYPE (name, default, meaning)."""
    from ..config import registry
    from ..config.fields import Invalid, describe
    from ..config.words import count_phrase

    if caffe:
        from ..interchange.caffe import translation_markdown
        click.echo(translation_markdown(), nl=False)
        return
    if layer_type is None:
        for name, cls in registry.layers.items():
            doc = " ".join((cls.__doc__ or "").split())
            first = doc.split(". ")[0].split("; ")[0].rstrip(".")
            click.echo(f"{name:<14} {first}")
        return
    try:
        cls = registry.layers.get(layer_type)
    except Invalid as exc:
        raise click.UsageError(str(exc)) from None
    caffe_type = cls.__dict__.get("caffe_type")
    click.echo(f"{cls.type_name}: {count_phrase(cls.n_bottoms, 'bottom')}, {count_phrase(cls.n_tops, 'top')}"
               + (f" (Caffe: {caffe_type}" + (f", {cls.caffe_message}" if cls.caffe_message else "") + ")"
                  if caffe_type else ""))
    doc = (cls.__doc__ or "").strip()
    if doc:
        click.echo(doc)
    rows = describe(cls.Params)
    if rows:
        width = max(len(r[0]) for r in rows)
        click.echo("")
        for name, default, doc in rows:
            click.echo(f"  {name:<{width}}  {default:<22} {doc}")


# ------------------------------------------------------------------------------------------------ train
class TrainingProgress:
    """The training bar (iteration, elapsed, ETA, smoothed loss, epoch, images/s) and, during a validation
    pass, a bar of its batches — on an interactive terminal of rank 0 only (tools/display.py)."""

    def __init__(self, bar):
        from .display import Tracker
        self.train, self.validation = Tracker(bar, "train"), Tracker(bar, "validation")
        self.last_t = self.last_it = None

    def step(self, solver):
        now = time.perf_counter()
        if self.last_t is None:
            self.last_t, self.last_it = now, solver.iteration
        rate = (solver.iteration - self.last_it) * solver.train_net.batch_size / max(now - self.last_t, 1e-9)
        if now - self.last_t > 2.0:
            self.last_t, self.last_it = now, solver.iteration
        detail = f"loss {solver.loss_ema:.4f}  epoch {solver.train_net.epoch}" + (f"  {rate:,.0f} img/s" if rate else "")
        self.train.update(solver.iteration, solver.total_iterations, detail)

    def other(self, what, done, total):
        self.validation.update(done, total)
        if done >= total:
            self.validation.finish()


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--resume", is_flag=False, flag_value="latest", default=None, metavar="[SNAPSHOT]",
              help="continue from the newest snapshot in the run folder, or from SNAPSHOT")
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="start from the parameters of a snapshot (fine-tuning); the solver starts afresh")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="run folder for snapshots and statistics [default: snapshots/<net name>]")
@set_option("override a config value, e.g. --set solver.max_iter=5000")
@click.option("--force", is_flag=True, help="start afresh in a folder that holds an earlier run (its snapshots, "
                                            "statistics and spec move to OUT/previous-N/)")
@backend_option
@friendly
def train(config, resume, weights, out, overrides, backend, force):
    """Train the net of CONFIG with its solver and coffee breaks.

    Ctrl-C (or SIGTERM) finishes the current iteration, writes a snapshot and stops; --resume continues
    exactly there.  Started as `mpiexec -n N netspec train CONFIG`, N processes share each batch (data
    parallelism); rank 0 prints, writes the statistics and the snapshots."""
    from .api import train as api_train
    from ..config.spec import load_spec

    if resume and weights:
        raise click.UsageError("give --resume or --weights, not both")
    if resume and force:
        raise click.UsageError("give --resume or --force, not both")
    from ..net.runner import launch_rank
    from .display import progress, say
    spec = load_spec(config, with_backend(overrides, backend))
    root = launch_rank() == 0
    with progress(enabled=None if root else False) as bar:
        shown = TrainingProgress(bar)
        solver = api_train(spec, out_dir=out, resume=resume, weights=weights,
                           log=(lambda m: say(bar, m)) if root else (lambda m: None), on_step=shown.step,
                           force=force, on_progress=shown.other)
    if solver.stop_signal is not None:       # stopped early by Ctrl-C or SIGTERM, after its snapshot:
        sys.exit(128 + int(solver.stop_signal))   # 130 / 143, so `train && test` does not go on


# ------------------------------------------------------------------------------------------- predict
@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("input_path", metavar="[INPUT]", required=False, type=click.Path(dir_okay=False))
@click.option("--weights", required=True, type=click.Path(dir_okay=False), help="snapshot to predict with")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="output: .h5, .npy or .csv [default: print the rows]")
@click.option("--blobs", default=None, help="comma-separated blobs to write [default: the blob the loss reads]")
@click.option("--key", default=None, help="array (.npz) or dataset (HDF5) to read [default: the source's top]")
@set_option()
@backend_option
@friendly
def predict(config, input_path, weights, out, blobs, key, overrides, backend):
    """Run the test-phase net of CONFIG with the snapshot's parameters on the rows of INPUT (.npy, .npz, an
    HDF5 file or a list file of them; default: the config's own test-phase data) and write the chosen
    blobs to OUT, or print them."""
    from .predict import load, own_rows, read_input, write_output

    model = load(config, weights, overrides=with_backend(overrides, backend))
    rows = read_input(input_path, model.spec, key) if input_path else own_rows(model.spec)
    names = blobs.split(",") if blobs else [model.output]
    from .display import Tracker, progress
    with progress() as bar:
        got = model.predict(rows, blobs=names, progress=Tracker(bar, "predict").update)
    if out is None:
        for name, a in got.items():
            click.echo(f"{name} ({'×'.join(map(str, a.shape))}):")
            for row in a.reshape(len(a), -1):
                click.echo("  " + " ".join(f"{v:.6g}" for v in row))
        return
    write_output(out, got)
    for name, a in got.items():
        click.echo(f"{out}: {name} {'×'.join(map(str, a.shape))}")


@main.command("sample")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--weights", required=True, type=click.Path(dir_okay=False), help="snapshot of the model")
@click.option("--length", default=500, show_default=True, type=click.IntRange(min=0), help="characters to draw")
@click.option("--temperature", default=1.0, show_default=True, type=click.FloatRange(0, min_open=True),
              help="below 1: safer text; above 1: more surprising")
@click.option("--prime", default="", help="text to start from (fed to the model first)")
@click.option("--seed", default=0, show_default=True, type=int, help="the same seed gives the same text")
@click.option("--argmax", is_flag=True, help="always the most likely character (no drawing)")
@set_option()
@friendly
def sample_cmd(config, weights, length, temperature, prime, seed, argmax, overrides):
    """Draw text from the character model of CONFIG with the snapshot's parameters (T = 1, N = 1, each drawn
    character fed back)."""
    from .sample import sample
    click.echo(sample(config, weights, length=length, temperature=temperature, prime=prime, seed=seed,
                      argmax=argmax, overrides=overrides))


# --------------------------------------------------------------------------------------------- curves
@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="picture to write (.png, .svg, .pdf)")
@click.option("--keys", default=None, help="comma-separated curves [default: train/loss, train/lr, every test/...]")
@click.option("--x", "x", type=click.Choice(["iter", "seconds", "epoch"]), default="iter", show_default=True)
@click.option("--smooth", default=1, show_default=True, type=click.IntRange(min=1), help="moving average over N points")
@click.option("--log-y", is_flag=True, help="logarithmic value axis")
@friendly
def plot(runs, out, keys, x, smooth, log_y):
    """Draw the curves of one or more RUNS (run folders or statistics.h5 files), overlaid, into OUT."""
    from .curves import plot as draw
    drawn = draw(list(runs), out, keys.split(",") if keys else None, x, smooth, log_y)
    click.echo(f"{out}: {', '.join(drawn)} of {len(runs)} run(s)")


@main.command()
@click.argument("run", type=click.Path(exists=True))
@click.option("--csv", "csv_out", default=None, type=click.Path(dir_okay=False), help="write every point as CSV")
@friendly
def stats(run, csv_out):
    """The last and best value of each curve of RUN; with --csv, every point (key, iteration, value,
    seconds, epoch)."""
    from .curves import stats_lines, write_csv
    if csv_out:
        click.echo(f"{csv_out}: {write_csv(run, csv_out)} points")
        return
    for line in stats_lines(run):
        click.echo(line)


# ------------------------------------------------------------------------------------------------- test
@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--weights", required=True, type=click.Path(dir_okay=False), help="snapshot to evaluate")
@set_option()
@backend_option
@friendly
def test(config, weights, overrides, backend):
    """Evaluate a snapshot on the test-phase data of CONFIG: every loss and accuracy, over the whole set."""
    from .api import evaluate
    from ..training.coffee import format_stat

    from .display import Tracker, progress
    with progress() as bar:
        stats, n = evaluate(config, weights, overrides=with_backend(overrides, backend),
                            progress=Tracker(bar, "test").update)
    echo_root(f"{weights}: {n} examples")
    for k, v in stats.items():
        echo_root(f"  {format_stat(k, v)}")


# ------------------------------------------------------------------------------------------------- time
@main.command("time")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--iterations", "-n", default=50, show_default=True, type=click.IntRange(min=1))
@set_option()
@friendly
def time_cmd(config, iterations, overrides):
    """Time CONFIG's training iterations: per-layer forward/backward, BLAS vs numba vs Python, img/s."""
    from ..config.spec import load_spec
    from .timing import format_timing, time_net

    spec = load_spec(config, overrides)
    click.echo(format_timing(time_net(spec, iterations), spec.name))


# ----------------------------------------------------------------------------------------------- import
@main.group("import")
def import_group():
    """Bring nets and weights in from other frameworks."""


def _pairs(values, option):
    out = {}
    for v in values:
        old, sep, new = v.partition("=")
        if not sep or not old or not new:
            raise click.UsageError(f"{option} takes OLD=NEW, got '{v}'")
        out[old] = new
    return out


@import_group.command("caffe")
@click.argument("net", type=click.Path(dir_okay=False))
@click.option("--solver", type=click.Path(dir_okay=False), default=None, help="the net's solver .prototxt")
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="a .caffemodel (binary or .caffemodel.h5) to turn into a snapshot")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="folder for the config (and snapshot)")
@click.option("--data", "data_map", multiple=True, metavar="OLD=NEW",
              help="read NEW (an HDF5 list file, a mean.h5) where the prototxt names OLD (an LMDB, a .binaryproto)")
@click.option("--stage", default=None, help="the Caffe test stage whose layers to keep (default: the solver's last)")
@friendly
def import_caffe_cmd(net, solver, weights, out, data_map, stage):
    """Translate a Caffe NET .prototxt (and solver) into a netspec config; with --weights, a snapshot."""
    from ..interchange.caffe import import_caffe
    done = import_caffe(net, out, solver, weights, _pairs(data_map, "--data"), stage)
    for note in done["notes"]:
        click.echo(f"note: {note}", err=True)
    click.echo(f"config: {done['config']}")
    if done["weights"]:
        click.echo(f"weights: {done['weights']}  (use with --weights)")


# ----------------------------------------------------------------------------------------------- export
@main.group("export")
def export_group():
    """Write a trained net in another framework's format."""


@export_group.command("onnx")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--weights", required=True, type=click.Path(dir_okay=False), help="snapshot of the model")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="the .onnx file to write")
@click.option("--batch", default=100, show_default=True, type=click.IntRange(min=1),
              help="rows of the test data the export is verified on")
@set_option()
@friendly
def export_onnx_cmd(config, weights, out, batch, overrides):
    """Export the test-phase net of CONFIG to ONNX (opset 17), verified by onnx.checker and by onnxruntime
    against netspec's own forward before it is written."""
    from .export import export_onnx
    r = export_onnx(config, weights, out, overrides=overrides, batch=batch)
    click.echo(f"onnx.checker: {r['checker']}")
    same = f"; same class for {r['same_class']:.2%} of them" if r["same_class"] is not None else ""
    click.echo(f"onnxruntime vs netspec on {r['rows']} {r['origin']}: max |Δ| = {r['max_abs']:.2g}{same}")
    click.echo(f"wrote {r['path']} ({r['nodes']} nodes, input '{r['input']}', output '{r['output']}', "
               f"{r['bytes'] / 1e6:.1f} MB)")


# ------------------------------------------------------------------------------------------------- data
@main.group()
def data():
    """Prepare datasets as HDF5 shards plus a list file."""


@data.command("mnist")
@click.option("--from", "src", type=click.Path(file_okay=False), default=None,
              help="folder with the four MNIST IDX files (.gz or not); default $NETSPEC_MNIST_DIR, else download")
@click.option("--out", default="data/mnist", show_default=True, type=click.Path(file_okay=False))
@click.option("--shard-rows", default=10000, show_default=True, type=click.IntRange(min=1))
@friendly
def data_mnist(src, out, shard_rows):
    """MNIST IDX files -> OUT/{train,test}.txt and HDF5 shards (data N×1×28×28 ×1/256, label)."""
    from ..datasets import mnist
    prepare_with_progress(mnist, src, out, shard_rows=shard_rows)


def prepare_with_progress(preparer, source, out, unit="examples", **options):
    """Run a preparer of :mod:`netspec.datasets` with a progress bar per split on stderr; print the splits."""
    from .display import Tracker, progress
    with progress() as bar:
        tasks = {}

        def update(what, done, total):
            if what not in tasks:
                tasks[what] = Tracker(bar, what)
            tasks[what].update(done, total)
        prepared = preparer.prepare(source, out, progress=update, echo=lambda m: click.echo(m, err=True), **options)
    for split, (listing, rows) in prepared.items():
        click.echo(f"{split}: {listing} ({rows} {unit})")
    return prepared


@data.command("cifar10")
@click.option("--from", "src", type=click.Path(), default=None,
              help="folder with the binary or python batches, or the official .tar.gz; default "
                   "$NETSPEC_CIFAR10_DIR, else download")
@click.option("--out", default="data/cifar10", show_default=True, type=click.Path(file_okay=False))
@click.option("--shard-rows", default=10000, show_default=True, type=click.IntRange(min=1))
@friendly
def data_cifar10(src, out, shard_rows):
    """CIFAR-10 -> OUT/{train,test}.txt, HDF5 shards (data N×3×32×32 uint8, label) and OUT/mean.h5."""
    from ..datasets import cifar10
    prepare_with_progress(cifar10, src, out, shard_rows=shard_rows)
    click.echo(f"mean: {out}/mean.h5")


@data.command("arrays")
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output folder")
@click.option("--split", default="train", show_default=True, help="name of the list file (SPLIT.txt)")
@click.option("--labels", type=click.Path(dir_okay=False), default=None, help=".npy of labels (for a .npy SOURCE)")
@click.option("--data-key", default=None, help=".npz: name of the data array")
@click.option("--label-key", default=None, help=".npz: name of the label array")
@click.option("--label-column", default="-1", show_default=True, help=".csv: label column, or 'none'")
@click.option("--shard-rows", default=10000, show_default=True, type=click.IntRange(min=1))
@friendly
def data_arrays(source, out, split, labels, data_key, label_key, label_column, shard_rows):
    """A .npy, .npz or .csv file -> OUT/SPLIT.txt, HDF5 shards (data, label) and OUT/mean.h5."""
    from ..datasets import arrays
    prepare_with_progress(arrays, source, out, shard_rows=shard_rows, split=split, labels=labels,
                          data_key=data_key, label_key=label_key, label_column=label_column)
    click.echo(f"mean: {out}/mean.h5")


@data.command("text")
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output folder")
@click.option("--val-fraction", default=0.1, show_default=True, type=click.FloatRange(0, 1, min_open=True,
                                                                                       max_open=True),
              help="the last part of the text kept for validation")
@click.option("--shard-rows", default=1_000_000, show_default=True, type=click.IntRange(min=1),
              help="characters per shard")
@friendly
def data_text(source, out, val_fraction, shard_rows):
    """A text file -> OUT/vocab.json (every distinct character) and integer-coded HDF5 shards of the text,
    OUT/{train,val}.txt (the last 10% is the validation split)."""
    from ..datasets import text
    prepare_with_progress(text, source, out, unit="characters", shard_rows=shard_rows, val_fraction=val_fraction)


def run():  # pragma: no cover - ``python -m netspec``
    main(prog_name="netspec")


if __name__ == "__main__":  # pragma: no cover
    run()
