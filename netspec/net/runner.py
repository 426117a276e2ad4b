"""Parallel execution: how a net's batch is spread over threads and processes, and where gradients meet.

A config's ``batch_size`` is the *global* batch.  The runner cuts it twice:

* across **processes** (MPI ranks): rank r computes the contiguous rows ``chunk_slice(N, r, ranks)``; its
  data layers read only those rows;
* inside a process, across **threads**: the rank's rows are cut again into one *replica* per thread.  Every
  replica is the net's layers over views of the process's blobs (nothing is copied between them).

Layers never see any of this: their context knows the global batch size (losses divide by it, so the
gradients of all replicas simply add up) and which global rows it computes (random streams are keyed by
them, see :class:`RandomStream`).

Between "gradients ready" and "update" sits one reduction seam (Caffe's ``on_gradients_ready``): every
parameter gradient lives in one flat buffer per replica, the threads add the replicas' buffers by parts
(:class:`Team`), and then the process :class:`Reducer` sums the buffer over processes in place — nothing for
one process, one ``MPI_Allreduce`` for many.  The two compose: 2 processes × 2 threads each.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..config.env import env_count
from ..config.errors import NetspecError


def chunk_slice(size: int, k: int, parts: int) -> slice:
    """The k-th of ``parts`` near-equal contiguous pieces of range(size)."""
    return slice(size * k // parts, size * (k + 1) // parts)


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def default_threads(local_ranks: int) -> int:
    """The cores this process may use — divided among the netspec processes on its host when it may use
    all of them (no launcher bound it to its own cores)."""
    cores, total = usable_cores(), os.cpu_count() or 1
    return cores if cores < total else max(1, cores // max(1, local_ranks))


# ------------------------------------------------------------------------------------------- processes
class Reducer:
    """The process level of the reduction seam: one process, nothing to do.  :class:`MPIReducer` sums
    across processes."""

    rank, size, local_size = 0, 1, 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def allreduce(self, buf: np.ndarray) -> None:
        """Sum ``buf`` (a contiguous array) over every process, in place."""

    def sum_values(self, values) -> np.ndarray:
        """The sum over processes of a few float64 values."""
        return np.asarray(values, np.float64)

    def broadcast(self, buf: np.ndarray) -> None:
        """Copy rank 0's ``buf`` into every process's, in place."""

    def any(self, flag: bool) -> bool:
        """True on every process if ``flag`` is true on any."""
        return bool(flag)

    def barrier(self) -> None:
        pass

    def gather_rows(self, rows: np.ndarray) -> np.ndarray:
        """Every process's ``rows`` stacked in rank order (axis 0): the global batch's rows."""
        return rows

    def abort(self, code: int = 1) -> None:
        raise SystemExit(code)

    def describe(self) -> str:
        return "1 process"


class MPIReducer(Reducer):
    """Sums across the processes of an MPI communicator (mpi4py); in-place collectives on numpy buffers."""

    def __init__(self, comm):
        from mpi4py import MPI
        self._mpi, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.local_size = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()

    def allreduce(self, buf):
        self.comm.Allreduce(self._mpi.IN_PLACE, buf, op=self._mpi.SUM)

    def sum_values(self, values):
        out = np.array(values, np.float64)
        self.comm.Allreduce(self._mpi.IN_PLACE, out, op=self._mpi.SUM)
        return out

    def broadcast(self, buf):
        self.comm.Bcast(buf, root=0)

    def any(self, flag):
        return bool(self.comm.allreduce(int(bool(flag)), op=self._mpi.MAX))

    def barrier(self):
        self.comm.Barrier()

    def gather_rows(self, rows):
        return np.concatenate(self.comm.allgather(np.ascontiguousarray(rows)))

    def abort(self, code=1):
        self.comm.Abort(code)

    def describe(self):
        return f"{self.size} processes"


MPI_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS")


def launched_by_mpi() -> bool:
    """True when this process was started by ``mpiexec`` with more than one process."""
    for var in MPI_SIZE_VARS:
        try:
            if int(os.environ.get(var, "1")) > 1:
                return True
        except ValueError:
            continue
    return False


MPI_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")


def launch_rank() -> int:
    """This process's rank as the launcher says (without starting MPI); 0 when not launched by mpiexec."""
    for var in MPI_RANK_VARS:
        try:
            return int(os.environ[var])
        except (KeyError, ValueError):
            continue
    return 0


_WORLD: Reducer | None = None


def started_world() -> Reducer | None:
    """The process reducer if this run has started it, else None (nothing is started here)."""
    return _WORLD


def world() -> Reducer:
    """The process reducer of this run: MPI's world when started by ``mpiexec -n N`` (N > 1), else one
    process.  mpi4py is imported only then, with a one-line install hint when it is missing."""
    global _WORLD
    if _WORLD is None:
        if launched_by_mpi():
            try:
                from mpi4py import MPI
            except ImportError:
                raise NetspecError("started by mpiexec, but mpi4py is not installed; install it with "
                                   "pip install -e \".[mpi]\" (or pip install mpi4py mpich)") from None
            _WORLD = MPIReducer(MPI.COMM_WORLD) if MPI.COMM_WORLD.Get_size() > 1 else Reducer()
        else:
            _WORLD = Reducer()
    return _WORLD


# --------------------------------------------------------------------------------------------- threads
class Team:
    """K threads running the K replicas of one net in lock step: ``run(fn)`` calls ``fn(k)`` for every k
    at once (k = 0 in the calling thread); ``wait()`` is their barrier.  ``prepare()`` runs once in each
    thread the team starts."""

    def __init__(self, k: int, prepare=None):
        self.k = k
        self._barrier = threading.Barrier(k) if k > 1 else None
        self._pool = (ThreadPoolExecutor(max_workers=k - 1, thread_name_prefix="netspec-replica",
                                         initializer=_prepare, initargs=(prepare,)) if k > 1 else None)

    def run(self, fn) -> None:
        if self.k == 1:
            fn(0)
            return
        if self._pool is None:
            raise RuntimeError("this net was closed; build a new one")
        futures = [self._pool.submit(self._guarded, fn, k) for k in range(1, self.k)]
        errors = []
        try:
            self._guarded(fn, 0)
        except BaseException as exc:   # noqa: BLE001 - re-raised below, after the other threads stopped
            errors.append(exc)
        for f in futures:
            try:
                f.result()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
        if errors:
            self._barrier.reset()
            real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
            raise (real or errors)[0]

    def _guarded(self, fn, k):
        try:
            fn(k)
        except BaseException:
            self._barrier.abort()          # release the threads waiting for this one
            raise

    def wait(self) -> None:
        if self._barrier is not None:
            self._barrier.wait()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _prepare(prepare):
    """A replica thread starts: overflow shows up as a non-finite loss, which the solver reports naming the
    layer, so numpy's own warnings would only add noise (the setting is per thread); then the backend's own
    per-thread set-up (``prepare``: the cpu backend flushes denormals)."""
    np.seterr(over="ignore", invalid="ignore")
    if prepare is not None:
        prepare()


class Runner:
    """The execution strategy of a run: ``threads`` per process (default: the cores this process may use,
    divided by the processes on its host; ``NETSPEC_THREADS`` overrides) and the process ``reducer``."""

    def __init__(self, threads: int | None = None, reducer: Reducer | None = None):
        self.reducer = reducer if reducer is not None else world()
        if threads is None:
            threads = env_count("NETSPEC_THREADS") or default_threads(self.reducer.local_size)
        self.threads = max(1, int(threads))

    @property
    def rank(self) -> int:
        return self.reducer.rank

    @property
    def size(self) -> int:
        return self.reducer.size

    @property
    def is_root(self) -> bool:
        return self.reducer.is_root

    def process_rows(self, n: int) -> slice:
        """This process's rows of a global batch of ``n``."""
        return chunk_slice(n, self.rank, self.size)

    def thread_rows(self, rows: int, threads: int | None = None) -> list[slice]:
        """Cut ``rows`` local rows into one contiguous piece per thread (no more pieces than rows)."""
        k = max(1, min(self.threads if threads is None else threads, rows)) if rows else 1
        return [chunk_slice(rows, i, k) for i in range(k)]

    def reduce_gradients(self, net, k: int) -> float:
        """The reduction seam, called in replica k's thread once its backward is done: the threads add the
        replicas' flat gradient buffers into the net's by parts (thread k sums part k), then one in-place
        allreduce sums the buffer over processes.  Returns the global loss (the same in every thread and
        process).  When it returns, the parameters' ``diff`` hold the global batch's gradient (thread k's part
        of it, for one process of several threads: the update of part k runs next in the same thread)."""
        team, flat, replicas = net.team, net.flat, net.replicas
        parts = len(replicas)
        if parts > 1:
            team.wait()                                 # every replica's gradient is complete
            if flat is not None:
                sl = chunk_slice(flat.size, k, parts)
                total = flat.diff[sl]
                for r in replicas[1:]:
                    net.backend.add(total, r.grads[sl], total)
        loss = net._local_loss()
        if self.size > 1:
            team.wait()                                 # every part is summed
            if k == 0:
                if flat is not None:
                    self.reducer.allreduce(flat.diff)
                net._global_loss = float(self.reducer.sum_values([loss])[0])
            team.wait()
            loss = net._global_loss
        return loss

    def describe(self, n: int, replicas: list[slice]) -> str:
        """How a global batch of ``n`` rows is split, for the logs."""
        local = self.process_rows(n)
        per_thread = "+".join(str(s.stop - s.start) for s in replicas)
        threads = f"{len(replicas)} thread{'s' if len(replicas) != 1 else ''} ({per_thread} rows)"
        if self.size == 1:
            return f"batch {n}: 1 process, {threads}"
        return (f"batch {n}: {self.size} processes × {local.stop - local.start} rows "
                f"(rank {self.rank}), each {threads}")
