"""The ``netspec`` command line: a thin layer over the Python API.

Every error a user can cause is printed as ``error: <one line>`` (one line per problem) with exit status 1;
never a traceback.
"""
from __future__ import annotations

import functools
import os
import sys

import click

from .errors import NetspecError


def friendly(fn):
    """Turn netspec errors (and a few OS ones) into one-line messages and exit status 1."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NetspecError as exc:
            for line in str(exc).splitlines() or [type(exc).__name__]:
                click.echo(f"error: {line}", err=True)
            sys.exit(1)
        except (OSError, MemoryError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="netspec")
def main():
    """netspec: declarative neural-network training (Caffe / Mocha.jl style YAML nets, numba CPU backend)."""


# ------------------------------------------------------------------------------------------------- show
@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--phase", type=click.Choice(["train", "test"]), default="train", show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a config value")
@friendly
def show(config, phase, overrides):
    """Print the layer table of CONFIG: wiring, blob shapes, parameter counts, memory."""
    from .api import load_spec
    from .net import Net
    from .report import layer_table

    spec = load_spec(config, overrides)
    with Net(spec, phase) as net:
        click.echo(layer_table(net))


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
    from .datasets import mnist

    totals = {"train": 60000, "test": 10000}
    bars = {}

    def progress(split, n):
        if split not in bars:
            bars[split] = click.progressbar(length=totals[split], label=f"{split:5s}", file=sys.stderr)
            bars[split].__enter__()
        bars[split].update(n)
        if bars[split].pos >= totals[split]:
            bars[split].__exit__(None, None, None)

    lists = mnist.prepare(src, out, shard_rows, progress=progress, echo=lambda m: click.echo(m, err=True))
    for split, path in lists.items():
        click.echo(f"{split}: {path} ({totals[split]} examples)")


def run():  # pragma: no cover - ``python -m netspec``
    main(prog_name="netspec")


if __name__ == "__main__":  # pragma: no cover
    run()
