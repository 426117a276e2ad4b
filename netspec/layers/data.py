"""Data layers: HDF5Data (Caffe/Mocha list files of HDF5 files, streamed in chunks) and MemoryData.

Both deliver ``batch_size`` rows per forward into their tops (one top per dataset / array, named alike),
wrap around at the end of the data and count epochs.  With ``shuffle: true`` each epoch visits the chunks
in a new random order and the rows of each chunk in a new random order; the orders are a pure function of
(net seed, layer name, epoch, chunk), so the layer's whole state is its cursor (epoch, chunk, row) —
which is what a snapshot stores, and why a resumed run sees exactly the batches it would have seen.

In the test phase the layer reports, as ``batch_valid``, how many rows of the global batch belong to the
current pass; the net tells each replica how many of its rows count, so statistics layers count only those
and a validation epoch averages over every example once.  A process running part of the batch (MPI) walks the
same global order and copies only its rows (``ctx.rows``).
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass

import h5py
import numpy as np

from ..config import registry
from ..config.errors import DataError
from ..config.fields import Invalid, boolean, fields_plain, int_list, integer, param, string
from .transforms import build_transforms, transforms_param
from .base import Layer


class _Source(Layer):
    """Shared cursor and batching logic.  Subclasses provide ``units`` (row counts per chunk), ``row_shapes``
    and ``_load(unit_index, bufs)`` that fills the chunk buffers (one per top)."""

    is_source = True
    n_bottoms = (0, 0)
    n_tops = (1, None)
    differentiable = False

    def _init_cursor(self, units: list[int]):
        self.units = units
        self.epoch_size = int(sum(units))
        self.epoch, self.unit_pos, self.row_pos = 0, 0, 0
        self._stream = zlib.crc32(self.name.encode())
        self._loaded = None
        self._order_cache = None
        self.perm = None

    def _order(self):
        if self._order_cache is None or self._order_cache[0] != self.epoch:
            n = len(self.units)
            order = (np.random.default_rng([self.ctx.seed, self._stream, self.epoch]).permutation(n)
                     if self.p.shuffle else np.arange(n))
            self._order_cache = (self.epoch, order)
        return self._order_cache[1]

    def _enter_unit(self):
        unit = int(self._order()[self.unit_pos])
        if self._loaded != (self.epoch, self.unit_pos):
            self._load(unit, self.bufs)
            self._loaded = (self.epoch, self.unit_pos)
            n = self.units[unit]
            if self.p.shuffle:
                self.perm = np.random.default_rng([self.ctx.seed, self._stream, self.epoch, self.unit_pos + 1]).permutation(n)
            else:
                self.perm = np.arange(n)
        return unit

    def _init_transforms(self, shape):
        self.transforms = build_transforms(self.p.transforms, self)
        for t in self.transforms:
            t.setup(shape, self.p.batch_size)
        self.train_random = self.ctx.phase == "train" and any(t.random for t in self.transforms)

    def _apply_transforms(self, cursor):
        if not self.transforms:
            return
        # drawn for the whole global batch from the cursor, so every process and split sees the same values
        rng = (np.random.default_rng([self.ctx.seed, self._stream, 7, *cursor]) if self.train_random else None)
        x = self.tops[0].data
        for t in self.transforms:
            if not t.random or self.train_random:
                t.apply(x, rng, self.rows)

    def forward(self):
        """Walk the global batch from the cursor; copy the rows this process computes (``ctx.rows``)."""
        b = self.p.batch_size
        lo, hi = self.rows.start, self.rows.stop
        cursor = (self.epoch, self.unit_pos, self.row_pos)
        filled, valid = 0, None
        while filled < b:
            unit = self._enter_unit()
            n = self.units[unit]
            take = min(b - filled, n - self.row_pos)
            a, z = max(filled, lo), min(filled + take, hi)
            if a < z:
                idx = self.perm[self.row_pos + a - filled:self.row_pos + z - filled]
                for buf, top in zip(self.bufs, self.tops):
                    self.be.take_rows(buf, idx, top.data[a - lo:z - lo])
            filled += take
            self.row_pos += take
            if self.row_pos == n:
                self.row_pos = 0
                self.unit_pos += 1
                if self.unit_pos == len(self.units):
                    self.unit_pos = 0
                    self.epoch += 1
                    if valid is None:
                        valid = filled
        self.batch_valid = valid if (valid is not None and self.ctx.phase == "test") else None
        self._apply_transforms(cursor)

    def backward(self):
        pass

    def rewind(self):
        """Go back to the first row of the current epoch's order (validation starts each pass here)."""
        self.unit_pos, self.row_pos = 0, 0

    @property
    def batches_per_epoch(self) -> int:
        return -(-self.epoch_size // self.p.batch_size)

    def state(self):
        """The cursor, and the chunk sizes it refers to (so a resume after the data changed is refused)."""
        return {"epoch": self.epoch, "unit_pos": self.unit_pos, "row_pos": self.row_pos,
                "units": np.asarray(self.units, np.int64)}

    def set_state(self, state):
        try:
            epoch, unit, row = (int(state[k]) for k in ("epoch", "unit_pos", "row_pos"))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"layer '{self.name}': no data cursor (epoch, unit_pos, row_pos) in {state!r}") from None
        units = state.get("units")
        if units is not None and list(np.asarray(units).reshape(-1)) != list(self.units):
            raise ValueError(f"layer '{self.name}': the snapshot's data had {len(units)} chunks of "
                             f"{sum(int(u) for u in np.asarray(units).reshape(-1))} rows, the data now {len(self.units)} of {self.epoch_size}: did the "
                             "data files change since the snapshot?")
        fits = epoch >= 0 and 0 <= unit < len(self.units)
        if fits:
            saved, self.epoch = self.epoch, epoch            # the chunk order is a function of the epoch
            fits = 0 <= row < self.units[int(self._order()[unit])]
            self.epoch = saved
        if not fits:
            raise ValueError(f"layer '{self.name}': the data cursor (epoch {epoch}, chunk {unit}, row {row}) does not "
                             f"fit the data ({len(self.units)} chunks of {self.epoch_size} rows in all): did the data "
                             "files change since the snapshot?")
        self.epoch, self.unit_pos, self.row_pos = epoch, unit, row
        self._loaded = None

    def _top_shapes(self):
        r = self.ctx.rows
        if self.ctx.batch_total is not None and self.ctx.batch_total != self.p.batch_size:
            r = slice(0, None)       # a second source of another batch size (one process): its whole batch
        self.rows = range(r.start or 0, self.p.batch_size if r.stop is None else r.stop)
        self.batch_valid = None       # rows of the global batch that belong to the current pass (test phase)
        shapes = [(len(self.rows),) + tuple(s) for s in self.row_shapes]
        self._init_transforms(shapes[0])
        return shapes


@dataclass(frozen=True)
class HDF5DataParams:
    source: str = param(string(), doc="list file naming one HDF5 file per line (Mocha: source)", caffe="source")
    batch_size: int = param(integer(lo=1), doc="rows per batch", caffe="batch_size")
    shuffle: bool = param(boolean(), False, "visit the data in a new random order every epoch", caffe="shuffle")
    chunk_rows: int = param(integer(lo=1), 16384, "rows read from disk at a time (memory bound of the layer)")
    transforms: list = param(transforms_param, [], "transforms of the first top: scale, mean, std, mirror, crop, rotate")


def list_file_paths(src: str) -> list[str]:
    """The HDF5 files a list file names (Caffe's ``source``): one per line, relative to the list's folder;
    blank lines and ``#`` comments skipped."""
    folder = os.path.dirname(os.path.abspath(src))
    with open(src) as fh:
        paths = [ln.strip() for ln in fh if ln.strip() and not ln.lstrip().startswith("#")]
    return [p if os.path.isabs(p) else os.path.join(folder, p) for p in paths]


def resolve(path: str, base_dir: str) -> str:
    """A relative path is looked up in the working directory, then beside the config file."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    alt = os.path.join(base_dir, path)
    return alt if os.path.exists(alt) else path


def searched(path: str, base_dir: str) -> str:
    """Where :func:`resolve` looked for ``path``, for an error message."""
    here, beside = os.path.abspath(path), os.path.abspath(os.path.join(base_dir, path))
    return here if os.path.isabs(path) or here == beside else f"{here} and {beside}"


def prepare_command(source: str) -> str:
    """The `netspec data` command that writes a list file like ``source``: the dataset its path names
    (data/mnist/train.txt: MNIST), else the one for arrays of the user's own."""
    parts = os.path.normpath(source).lower().split(os.sep)
    if any(part.startswith("cifar") for part in parts):
        return f"netspec data cifar10 --from cifar-10-binary.tar.gz --out {os.path.dirname(source) or '.'}"
    if "mnist" in parts or any(part.startswith("mnist") for part in parts):
        return "netspec data mnist"
    split = os.path.splitext(os.path.basename(source))[0]
    return f"netspec data arrays FILE.npz --split {split} --out {os.path.dirname(source) or '.'}"


@registry.layers.register("HDF5Data")
class HDF5DataLayer(_Source):
    """Reads the datasets named like its tops from every HDF5 file of the ``source`` list.

    Paths in the list file are relative to the list file's folder (absolute ones are used as they are).
    The files are kept open and read ``chunk_rows`` rows at a time with ``read_direct`` into buffers
    allocated once; HDF5 converts the stored type (e.g. uint8) to float32 on the way.
    """

    caffe_type, caffe_message = "HDF5Data", "hdf5_data_param"

    Params = HDF5DataParams

    def setup(self, bottoms):
        src = resolve(self.p.source, self.ctx.base_dir)
        if not os.path.isfile(src):
            raise DataError(f"{self.where}: layers -> {self.name} -> source: list file '{self.p.source}' not found "
                            f"(looked in {searched(self.p.source, self.ctx.base_dir)}; prepare it with e.g. "
                            f"'{prepare_command(self.p.source)}')")
        paths = list_file_paths(src)
        if not paths:
            raise DataError(f"{self.where}: layers -> {self.name}: list file '{src}' names no HDF5 file")
        self.files, units, self.row_shapes = [], [], None
        self.unit_index = []
        for full in paths:
            f = self._open(full, src)
            dsets = []
            for top in self.spec.tops:
                if top not in f:
                    raise DataError(f"{self.where}: layers -> {self.name}: HDF5 file '{full}' has no dataset "
                                    f"'{top}' (it has: {', '.join(f.keys()) or 'nothing'}); dataset names must "
                                    "equal the layer's tops")
                if not isinstance(f[top], h5py.Dataset):
                    raise DataError(f"{self.where}: layers -> {self.name}: '{top}' in HDF5 file '{full}' is a group, "
                                    "not a dataset; the layer reads one dataset per top")
                dsets.append(f[top])
            lengths = {d.shape[0] if d.ndim else 0 for d in dsets}
            if len(lengths) != 1:
                detail = ", ".join(f"{t}: {d.shape[0] if d.ndim else 0}" for t, d in zip(self.spec.tops, dsets))
                raise DataError(f"{self.where}: layers -> {self.name}: datasets in '{full}' have different "
                                f"lengths ({detail})")
            shapes = [tuple(d.shape[1:]) for d in dsets]
            if self.row_shapes is None:
                self.row_shapes = shapes
            elif shapes != self.row_shapes:
                raise DataError(f"{self.where}: layers -> {self.name}: rows in '{full}' have shapes {shapes}, "
                                f"earlier files have {self.row_shapes}")
            self.files.append((f, dsets))
            n = lengths.pop()
            for start in range(0, n, self.p.chunk_rows):
                stop = min(n, start + self.p.chunk_rows)
                self.unit_index.append((len(self.files) - 1, start, stop))
                units.append(stop - start)
        if not units:
            raise DataError(f"{self.where}: layers -> {self.name}: the files of '{src}' hold no rows")
        self._init_cursor(units)
        rows = max(units)
        # host buffers: HDF5 reads into main memory; take_rows moves the batch's rows to the backend
        self.bufs = [np.zeros((rows,) + s, self.dtype) for s in self.row_shapes]
        return self._top_shapes()

    def _open(self, full, src):
        if not os.path.isfile(full):
            raise DataError(f"{self.where}: layers -> {self.name}: HDF5 file '{full}' (listed in '{src}') not found")
        try:
            return h5py.File(full, "r")
        except OSError as exc:
            raise DataError(f"{self.where}: layers -> {self.name}: cannot read HDF5 file '{full}': {exc}") from None

    def _load(self, unit, bufs):
        fi, start, stop = self.unit_index[unit]
        _, dsets = self.files[fi]
        for d, buf in zip(dsets, bufs):
            try:
                d.read_direct(buf, np.s_[start:stop], np.s_[0:stop - start])
            except (OSError, TypeError) as exc:
                raise DataError(f"layers -> {self.name}: cannot read rows {start}..{stop} of '{d.file.filename}'"
                                f"/{d.name}: {exc}") from None

    def close(self):
        for f, _ in getattr(self, "files", []):
            f.close()
        self.files = []


def inline_arrays(v):
    if not isinstance(v, dict) or not v:
        raise Invalid("expected a mapping from top name to values, e.g. {data: [[0, 1]], label: [1]}")
    out = {}
    for k, x in v.items():
        try:
            out[str(k)] = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise Invalid(f"values of '{k}' must be a (nested) list of numbers of one shape") from None
    return out


INLINE_MAX = 10_000   # numbers in one array of a MemoryData layer that the filled-in spec still writes out


@dataclass(frozen=True)
class MemoryDataParams:
    data: dict = param(inline_arrays, doc="top name -> array (inline in YAML, or numpy arrays from Python)")
    batch_size: int = param(integer(lo=1), doc="rows per batch")
    shuffle: bool = param(boolean(), False, "visit the rows in a new random order every epoch")
    transforms: list = param(transforms_param, [], "transforms of the first top: scale, mean, std, mirror, crop, rotate")

    def to_plain(self) -> dict:
        """The filled-in spec keeps small arrays inline (as a YAML file would hold them); an array given
        from Python with more than :data:`INLINE_MAX` numbers is recorded by dtype and shape only, since
        writing it as YAML lists would cost seconds and hundreds of MiB at every run."""
        out = fields_plain(self)
        arrays = {str(k): np.asarray(v) for k, v in self.data.items()}
        out["data"] = {k: (a.tolist() if a.size <= INLINE_MAX else
                           f"<{a.dtype} array of shape {list(a.shape)} given from Python>") for k, a in arrays.items()}
        return out


@registry.layers.register("MemoryData")
class MemoryDataLayer(_Source):
    """Serves arrays held in memory: inline lists in the YAML, or numpy arrays given from Python
    (``spec.with_layer('data', data={'data': X, 'label': y})`` or the Estimator API)."""

    Params = MemoryDataParams

    def setup(self, bottoms):
        missing = [t for t in self.spec.tops if t not in self.p.data]
        if missing:
            raise DataError(f"{self.where}: layers -> {self.name}: no array for top(s) {', '.join(missing)} "
                            f"(data has: {', '.join(self.p.data) or 'nothing'})")
        arrays = [np.asarray(self.p.data[t]) for t in self.spec.tops]
        lengths = {a.shape[0] if a.ndim else 0 for a in arrays}
        if len(lengths) != 1 or 0 in lengths:
            detail = ", ".join(f"{t}: {a.shape[0] if a.ndim else 0}" for t, a in zip(self.spec.tops, arrays))
            raise DataError(f"{self.where}: layers -> {self.name}: arrays must have the same, non-zero number of rows "
                            f"({detail})")
        self.row_shapes = [a.shape[1:] for a in arrays]
        self.bufs = [np.ascontiguousarray(a, dtype=self.dtype) for a in arrays]
        self._init_cursor([lengths.pop()])
        return self._top_shapes()

    def _load(self, unit, bufs):
        pass


@dataclass(frozen=True)
class InputParams:
    shape: tuple = param(int_list(lo=1), doc="shape of one row of the top, e.g. [1, 28, 28]", caffe="shape.dim")
    batch_size: int = param(integer(lo=1), 1, "rows per batch")


@registry.layers.register("Input")
class InputLayer(Layer):
    """A declared-shape source for deploy nets (Caffe's ``Input``): its top holds whatever rows are put into
    it (``netspec predict`` and ``netspec.load(...).predict`` feed it); it reads no file."""

    caffe_type, caffe_message = "Input", "input_param"

    Params = InputParams
    is_source = True
    n_bottoms = (0, 0)
    n_tops = (1, 1)
    differentiable = False
    epoch = 0
    batch_valid = None

    def setup(self, bottoms):
        r = self.ctx.rows
        rows = (self.p.batch_size if r.stop is None else r.stop) - (r.start or 0)
        return [(rows,) + tuple(self.p.shape)]

    def forward(self):
        pass

    def backward(self):
        pass
