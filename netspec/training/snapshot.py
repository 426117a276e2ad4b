"""Snapshots: parameters *and* the complete solver state in one HDF5 file, written atomically.

Layout (a tree of groups; arrays are datasets, numbers and strings are attributes):

    /params/<layer>/<name>                 every learnable array
    /solver       method, iteration, loss, loss_ema; /solver/history/<layer>/<name>/<slot>
    /lr_policy, /mom_policy                the policies' state
    /nets/<phase>/layers/<layer>           each layer's state (data cursors: epoch, chunk, row; ...)
    /nets/<phase>/random                   the net's random stream (its pass counter)
    /coffee/<n>                            coffee-break state
    /statistics/<key>                      every curve up to the snapshot's iteration ((n, 2): iteration, value)
    attrs: format, iteration, spec (the filled-in config as YAML), layout (checksum of the tree)

Every array carries a checksum of its bytes (``checksum``) and the root a checksum of the whole tree's
layout and every number and string in it (``layout``); :func:`load` verifies both and names the array or
the part that fails, so a flipped bit or a damaged group is refused instead of resumed from.

Everything but the parameters is collected through one protocol: the solver names its stateful parts
(:meth:`netspec.solver.Solver.stateful`), each with ``state()`` / ``set_state()``; :func:`capture` stores
their states under their names and :func:`apply` gives them back, refusing a snapshot that lacks a part.
Nothing here depends on how the batch was split over threads or processes, so a snapshot written by any
split resumes under any other.

A snapshot is written to a temporary file in the same folder, flushed to disk and renamed over its final
name, so a crash mid-write never leaves a half-written ``snapshot-<iter>.h5``.  Reading checks the file,
and ``--resume`` falls back to the previous snapshot when the newest one is unreadable.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
from dataclasses import dataclass

import h5py
import numpy as np

from ..config.errors import SnapshotError, os_reason

FORMAT = 3
CHECKSUM = "checksum"     # attribute of every dataset
LAYOUT = "layout"         # attribute of the root
NAME = re.compile(r"^snapshot-(\d+)\.h5$")


def _key(name: str) -> str:
    return name.replace("%", "%25").replace("/", "%2F")


def _unkey(name: str) -> str:
    return name.replace("%2F", "/").replace("%25", "%")


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _array_digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return _digest(f"{a.dtype.str}{a.shape}".encode() + a.tobytes())


def _plain(v):
    """A value as it reads back from HDF5 (numpy scalars to Python ones)."""
    v = v.decode() if isinstance(v, bytes) else v
    return v.item() if isinstance(v, np.generic) else v


def _layout(tree: dict, prefix="") -> list[str]:
    """One line per node of the tree: its path and, for a value, its type and repr (arrays: their digest)."""
    lines = []
    for k in sorted(tree, key=str):
        v, path = tree[k], f"{prefix}/{k}"
        if isinstance(v, dict):
            lines.append(f"{path}/")
            lines += _layout(v, path)
        elif isinstance(v, np.ndarray):
            lines.append(f"{path} = array {_array_digest(v)}")
        elif v is not None:
            v = _plain(v)
            lines.append(f"{path} = {type(v).__name__} {v!r}")
    return lines


def _write_tree(group, tree: dict):
    for k, v in tree.items():
        key = _key(str(k))
        if isinstance(v, dict):
            _write_tree(group.create_group(key), v)
        elif isinstance(v, np.ndarray):
            group.create_dataset(key, data=v).attrs[CHECKSUM] = _array_digest(v)
        elif v is None:
            continue
        else:
            group.attrs[key] = v


def _read_tree(group, path: str) -> dict:
    out = {_unkey(k): _plain(v) for k, v in group.attrs.items() if k != LAYOUT}
    for k, item in group.items():
        if isinstance(item, h5py.Group):
            out[_unkey(k)] = _read_tree(item, f"{path}/{_unkey(k)}")
            continue
        value = item[()]
        stored = item.attrs.get(CHECKSUM)
        if stored is None or _plain(stored) != _array_digest(np.asarray(value)):
            name = f"{path}/{_unkey(k)}".lstrip("/")
            raise SnapshotError(f"array '{name}' fails its checksum (the file is damaged)")
        out[_unkey(k)] = value
    return out


def snapshot_path(folder: str, iteration: int) -> str:
    return os.path.join(folder, f"snapshot-{iteration}.h5")


def write_atomically(path: str, fill, what: str = "the snapshot") -> str:
    """Write an HDF5 file atomically: ``fill(h5file)`` builds it in memory, then its bytes go to a temporary
    file in the same folder, are flushed to disk and renamed over ``path``.  (Building in memory keeps HDF5's
    own I/O out of the way: a full disk or a file-size limit is one plain error, and the temporary file goes.)"""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        fill(f)
    try:
        with open(tmp, "wb") as fh:
            fh.write(buf.getbuffer())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(exc, OSError):
            raise SnapshotError(f"{path}: cannot write {what} ({os_reason(exc)}); free space, raise the "
                                "file-size limit or choose another folder with --out") from None
        raise
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return path


def save(path: str, tree: dict) -> str:
    """Write ``tree`` to ``path`` atomically (see :func:`write_atomically`), with its checksums."""
    tree = {"format": FORMAT, **tree}

    def fill(f):
        _write_tree(f, tree)
        f.attrs[LAYOUT] = _digest("\n".join(_layout(tree)).encode())
    return write_atomically(path, fill)


@dataclass
class Snapshot:
    path: str
    tree: dict

    @property
    def iteration(self) -> int:
        return int(self.tree["iteration"])

    @property
    def params(self) -> dict:
        return {f"{layer}/{name}": arr for layer, d in self.tree.get("params", {}).items() for name, arr in d.items()}


def load(path: str) -> Snapshot:
    """Read and verify a snapshot: every array's checksum, the checksum of the tree, the parts every
    snapshot has; a :class:`SnapshotError` names the file and what is wrong."""
    if not os.path.isfile(path):
        raise SnapshotError(f"{path}: no such snapshot")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") is None:
                raise SnapshotError(f"{path}: not a netspec snapshot (no 'format' attribute)")
            layout = _plain(f.attrs.get(LAYOUT)) if LAYOUT in f.attrs else None
            tree = _read_tree(f, "")
    except SnapshotError as exc:
        msg = str(exc)
        raise SnapshotError(msg if msg.startswith(path) else f"{path}: {msg}") from None
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise SnapshotError(f"{path}: corrupt or truncated snapshot ({exc})") from None
    fmt = tree.get("format")
    if isinstance(fmt, int) and fmt >= 3:
        if layout is None or layout != _digest("\n".join(_layout(tree)).encode()):
            raise SnapshotError(f"{path}: its tree or a value in it fails the checksum (the file is damaged)")
    for need in ("params", "iteration"):
        if need not in tree:
            raise SnapshotError(f"{path}: incomplete snapshot (no '{need}')")
    if not isinstance(tree["iteration"], int) or tree["iteration"] < 0:
        raise SnapshotError(f"{path}: damaged snapshot (iteration {tree['iteration']!r})")
    return Snapshot(path, tree)


def capture(parts: dict) -> dict:
    """{place: obj.state()} for every stateful part, as a tree ("nets/train" becomes nets -> train)."""
    tree: dict = {}
    for place, obj in parts.items():
        *parents, leaf = place.split("/")
        node = tree
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = obj.state()
    return tree


def part(snap: Snapshot, place: str) -> dict:
    """The stored state at ``place`` ("nets/train"); a snapshot without it is refused, naming the part."""
    node = snap.tree
    for name in place.split("/"):
        if not isinstance(node, dict) or name not in node:
            raise SnapshotError(f"{snap.path}: incomplete snapshot (no state for '{place}'); resume from another "
                                "snapshot, or start from its parameters with --weights")
        node = node[name]
    return node


def apply(snap: Snapshot, parts: dict) -> None:
    """Give every stateful part its stored state (see :func:`capture`); a state that does not fit is refused
    naming the part."""
    for place, obj in parts.items():
        try:
            obj.set_state(part(snap, place))
        except SnapshotError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise SnapshotError(f"{snap.path}: the state of '{place}' does not fit this run ({exc})") from None


def check_resumable(snap: Snapshot) -> None:
    fmt = snap.tree.get("format")
    if fmt is not None and int(fmt) < FORMAT:
        raise SnapshotError(f"{snap.path}: written by an older netspec (snapshot format {fmt}, this one reads "
                            f"{FORMAT} to resume); start from its parameters with --weights instead")


def list_snapshots(folder: str) -> list[tuple[int, str]]:
    """(iteration, path) of every snapshot in ``folder``, by iteration (not by file time)."""
    if not os.path.isdir(folder):
        return []
    found = [(int(m.group(1)), os.path.join(folder, n)) for n in os.listdir(folder) if (m := NAME.match(n))]
    return sorted(found)


def latest(folder: str, warn=print, use=None) -> Snapshot:
    """The newest good snapshot in ``folder``: one that loads and verifies, and that ``use(snapshot)`` (the
    restore) accepts; each one refused is reported and the previous one tried."""
    snaps = list_snapshots(folder)
    if not snaps:
        raise SnapshotError(f"{folder}: no snapshot-<iter>.h5 to resume from")
    errors = []
    for k, (it, path) in enumerate(reversed(snaps)):
        try:
            snap = load(path)
            if use is not None:
                use(snap)
            return snap
        except SnapshotError as exc:
            errors.append(exc)
            if k + 1 < len(snaps):
                warn(f"warning: {exc}; trying the previous snapshot")
    if len(errors) == 1:
        raise errors[0]
    raise SnapshotError(f"{folder}: none of the {len(snaps)} snapshots can be resumed from; the newest: {errors[0]}")


def prune(folder: str, keep_last: int) -> None:
    for _, path in list_snapshots(folder)[:-keep_last]:
        os.remove(path)


def load_params(params: list, snap: Snapshot, strict: bool = True, warn=print) -> None:
    """Copy the snapshot's arrays into ``params`` (shared Param objects); shapes must match exactly.

    ``strict`` (resume) requires every parameter; otherwise (fine-tuning with ``--weights``) parameters the
    snapshot lacks keep their initialization, with a warning."""
    stored = snap.params
    for p in params:
        arr = stored.get(p.key)
        if arr is None:
            if strict:
                raise SnapshotError(f"{snap.path}: has no parameter '{p.key}' (layer '{p.layer}'); it was written "
                                    "by a different net")
            warn(f"warning: {snap.path} has no parameter '{p.key}'; layer '{p.layer}' keeps its initialization")
            continue
        if arr.shape != p.shape:
            raise SnapshotError(f"{snap.path}: layer '{p.layer}' parameter '{p.name}' has shape "
                                f"{'×'.join(map(str, arr.shape))} in the snapshot but "
                                f"{'×'.join(map(str, p.shape))} in the net")
        p.data[...] = arr


def check_writable(folder: str, needed_bytes: int) -> None:
    """Fail before training if snapshots cannot be written to ``folder`` (read-only, or a full disk)."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".write-test-{os.getpid()}")
        with open(probe, "wb") as fh:
            fh.write(b"\0" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
        os.remove(probe)
    except OSError as exc:
        raise SnapshotError(f"{folder}: cannot write snapshots here ({os_reason(exc)}); choose another "
                            "folder with --out") from None
    free = shutil.disk_usage(folder).free
    if free < 2 * needed_bytes:
        raise SnapshotError(f"{folder}: only {free / 2**20:.1f} MiB free on disk; snapshots need about "
                            f"{2 * needed_bytes / 2**20:.1f} MiB; free space or choose another folder with --out")
