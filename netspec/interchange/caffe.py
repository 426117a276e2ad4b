"""Caffe in: a net ``.prototxt`` (with its solver) becomes a netspec config, a ``.caffemodel`` (binary or HDF5)
becomes a snapshot.

The translation is driven by the declarations, not by a table of its own: a layer class names its Caffe type,
its Caffe parameter message and the order of its Caffe blobs (``caffe_type``, ``caffe_message``,
``caffe_blobs``), and each parameter its Caffe field (``param(..., caffe=...)``, see
:func:`netspec.config.fields.param`).  Every Caffe field that nothing claims is a problem, reported with the
prototxt's line — all of them at once — and so is every value netspec cannot express; nothing is dropped
silently.  The imported config is validated with the prototxt's lines, so an error in it names the line of
the prototxt that caused it.

Caffe's binary messages are read with the generic reader of :mod:`netspec.interchange.protobuf`; the field
numbers used (NetParameter.layer 100, LayerParameter name 1 / type 2 / blobs 7, BlobProto data 5 / shape 7 /
legacy num-channels-height-width 1–4 / double_data 8, BlobShape.dim 1; the legacy V1 ``layers`` 2 with
name 4 / blobs 6) are those of Caffe's public schema.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import h5py
import numpy as np

from ..config import registry
from ..config.errors import NetspecError, Where
from ..config.fields import fields_of
from ..config.yamlio import LDict, LList
from ..layers.data import list_file_paths, resolve
from . import protobuf as pb
from .protobuf import Enum, Message, ProtoError


class ImportProblems(NetspecError):
    """Everything of a Caffe file that cannot be imported, one line each (file:line: what, what instead)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


# ------------------------------------------------------------------------------------------ declarations
def caffe_layer_types() -> dict:
    """Caffe type name -> netspec layer class, from the classes' own ``caffe_type``."""
    return {cls.__dict__["caffe_type"]: cls for _, cls in registry.layers.items() if cls.__dict__.get("caffe_type")}


def caffe_fields(params_cls) -> list:
    """(dataclass field, caffe name, caffe values) of every parameter with a declared Caffe name."""
    return [(f, f.metadata["caffe"], f.metadata.get("caffe_values")) for f in fields_of(params_cls)
            if f.metadata.get("caffe")]


def translation_table() -> list[tuple[str, str, str]]:
    """(Caffe type, netspec type, "caffe field → netspec parameter, ...") for every importable layer type:
    what the README's translation table and ``netspec layers`` show."""
    rows = []
    for ctype, cls in sorted(caffe_layer_types().items()):
        parts = []
        for f, name, values in caffe_fields(cls.Params):
            shown = name.replace("|", " or ").replace(",", "/")
            if cls.caffe_message and not name.startswith(("/", "param[")) and \
                    ("." not in name.split("|")[0] or name.startswith("shape.")):
                shown = f"{cls.caffe_message}.{shown}"
            shown = shown.lstrip("/")
            if values:
                shown += " (" + ", ".join(f"{k}→{v}" for k, v in values.items()) + ")"
            parts.append(f"{shown} → {f.name}")
        rows.append((ctype, cls.type_name, "; ".join(parts)))
    return rows


def solver_table() -> list[tuple[str, str]]:
    """(Caffe solver field(s), netspec solver parameter) from the solver's, methods', policies' and coffee
    breaks' declarations."""
    from ..config.solver import SolverParams
    rows = []
    for f, name, values in caffe_fields(SolverParams):
        shown = name + (" (" + ", ".join(f"{k}→{v}" for k, v in values.items()) + ")" if values else "")
        rows.append((shown, f"solver.{f.name}"))
    rows.append(("lr_policy", "solver.lr_policy.type"))
    seen = {}
    for pname, pcls in registry.lr_policies.items():
        for f, name, _ in caffe_fields(pcls):
            seen.setdefault((name, f.name), []).append(pname)
    for (name, fname), pols in seen.items():
        rows.append((name, f"solver.lr_policy.{fname} ({', '.join(pols)})"))
    for f, name, _ in caffe_fields(registry.mom_policies.get("fixed")):
        rows.append((name, f"solver.mom_policy: {{type: fixed, {f.name}: ...}} (sgd, nesterov)"))
    for mname, mcls in registry.solvers.items():
        for f, name, _ in caffe_fields(mcls):
            rows.append((name, f"solver.{f.name} ({mname})"))
    for cname, ccls in registry.coffee_breaks.items():
        if getattr(ccls, "caffe_schedule", None):
            rows.append((ccls.caffe_schedule, f"coffee break {{type: {cname}, every_n_iter: ...}}"))
    return rows


def translation_markdown() -> str:
    """The README's translation table (``netspec layers --caffe`` prints it), made from the declarations."""
    lines = ["| Caffe layer type | netspec type | Caffe field → netspec parameter |", "|---|---|---|"]
    lines += [f"| `{c}` | `{n}` | {m or '—'} |" for c, n, m in translation_table()]
    lines += ["", "| Caffe solver field | netspec |", "|---|---|"]
    lines += [f"| `{c}` | `{n}` |" for c, n in solver_table()]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------- net
@dataclass
class _Ctx:
    path: str
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    data_map: dict = field(default_factory=dict)
    out_dir: str = "."

    def problem(self, line, what: str):
        self.problems.append(f"{self.path}:{line}: {what}")


REPEATED = {"coeff", "slice_point", "stepvalue", "dim", "mean_value"}
LAYER_FIELDS = {"name", "type", "bottom", "top", "include", "exclude", "phase", "param", "loss_weight"}


def _plain(v):
    if isinstance(v, Enum):
        return {"true": True, "false": False}.get(v.lower(), str(v))
    return v


def caffe_fillers() -> dict:
    """Caffe filler name -> netspec filler class: those whose every parameter has a Caffe name."""
    return {name: cls for name, cls in registry.fillers.items()
            if all(f.metadata.get("caffe") for f in fields_of(cls))}


def _filler(msg: Message, ctx: _Ctx, where: str):
    """A Caffe FillerParameter as a netspec filler mapping, with Caffe's defaults written out where they
    differ from netspec's (Caffe's gaussian has std 1 and its uniform [0, 1])."""
    kind = str(msg.get("type", "constant")).lower()
    known = caffe_fillers()
    if kind not in known:
        ctx.problem(msg.line_of("type"), f"{where}: filler '{kind}' has no netspec counterpart (netspec has "
                                         f"{', '.join(known)})")
        return None
    out, used = {"type": kind}, {"type"}
    for f, name, _ in caffe_fields(known[kind]):
        if msg.has(name):
            out[f.name] = _plain(msg.get(name))
            used.add(name)
        elif f.metadata.get("caffe_default") is not None:
            out[f.name] = f.metadata["caffe_default"]
    for k in msg.names():
        if k not in used and not (k == "variance_norm" and str(msg.get(k)) == "FAN_IN"):
            ctx.problem(msg.line_of(k), f"{where}: filler option '{k}: {msg.get(k)}' is not supported for '{kind}'")
    return out


def _resolve(layer: Message, message: Message | None, tag: str, name: str, used: set, where: str):
    """The value of the Caffe field ``name`` (see fields.param) in ``layer``, or (None, line) if absent."""
    if name.startswith("/"):
        key = name[1:]
        used.add(("", key))
        return (_plain(layer.get(key)), layer.line_of(key)) if layer.has(key) else (None, 0)
    if name.startswith("param["):
        idx, key = name[6:].split("].")
        blocks = layer.all("param")
        if idx == "*":
            names = [b.get(key) for b in blocks]
            if not any(names):
                return None, 0
            return [n or f"{where}/{i}" for i, n in enumerate(names)], layer.line_of("param")
        i = int(idx)
        if i < len(blocks) and blocks[i].has(key):
            used.add((f"param[{i}]", key))
            return _plain(blocks[i].get(key)), blocks[i].line_of(key)
        return None, 0
    if "." in name.split("|")[0] and not name.startswith("shape."):
        msg_name, key = name.split(".", 1)
        sub = layer.get(msg_name)
        if not isinstance(sub, Message):
            return None, 0
        used.add((msg_name, key))
        return (_plain(sub.get(key)), sub.line_of(key)) if sub.has(key) else (None, 0)
    if message is None:
        return None, 0
    one, _, pair = name.partition("|")
    if one == "shape.dim":
        sub = message.get("shape")
        used.add((tag, "shape"))
        return ([int(d) for d in sub.all("dim")], sub.line) if isinstance(sub, Message) else (None, 0)
    if message.has(one):
        used.add((tag, one))
        vals = [_plain(v) for v in message.all(one)]
        line = message.line_of(one)
        if isinstance(vals[0], Message):
            return vals[0], line
        return (vals if len(vals) > 1 or one in REPEATED else vals[0]), line
    if pair:
        h, w = pair.split(",")
        if message.has(h) or message.has(w):
            used.update({(tag, h), (tag, w)})
            return [int(message.get(h, 1)), int(message.get(w, 1))], message.line_of(h)
    return None, 0


def _map_params(cls, layer: Message, message: Message | None, ctx: _Ctx, where: str, used: set) -> LDict:
    out = LDict()
    out.line, out.key_lines = layer.line, {}
    for f, name, values in caffe_fields(cls.Params):
        val, line = _resolve(layer, message, cls.caffe_message or "", name, used, where)
        if val is None:
            if f.metadata.get("caffe_default") is not None:       # Caffe's default differs from netspec's
                out[f.name] = f.metadata["caffe_default"]
            continue
        if isinstance(val, Message):
            val = _filler(val, ctx, f"layer '{where}': {name}")
            if val is None:
                continue
        if values:
            if str(val) not in values:
                ctx.problem(line, f"layer '{where}': {name.split('|')[0]}: {val} is not supported (netspec has "
                                  f"{', '.join(values)})")
                continue
            val = values[str(val)]
        out[f.name] = val
        out.key_lines[f.name] = line
    return out


def _phase(layer: Message, ctx: _Ctx, where: str, stage: str | None):
    """netspec's phase (None: both) of a Caffe layer; False to leave the layer out (another test stage)."""
    phase = None
    for inc in layer.all("include"):
        if inc.has("phase"):
            phase = str(inc.get("phase")).lower()
        stages = [str(s) for s in inc.all("stage")]
        if stages and stage not in stages:
            ctx.notes.append(f"{ctx.path}:{inc.line}: layer '{where}' left out: it belongs to stage "
                             f"{', '.join(stages)} (netspec has one test net; choose the stage with --stage)")
            return False
        for k in inc.names():
            if k not in ("phase", "stage"):
                ctx.problem(inc.line_of(k), f"layer '{where}': include {k} is not supported")
    for exc in layer.all("exclude"):
        if exc.has("phase") and len(exc.names()) == 1:
            phase = "test" if str(exc.get("phase")) == "TRAIN" else "train"
        else:
            ctx.problem(exc.line, f"layer '{where}': exclude rules other than one phase are not supported")
    return phase


def _data_source(path: str, ctx: _Ctx, line, where: str, what: str):
    if path in ctx.data_map:
        return ctx.data_map[path]
    example = "test" if "test" in os.path.basename(path).lower() else "train"
    ctx.problem(line, f"layer '{where}': {what} '{path}' — netspec reads HDF5 list files; add "
                      f"--data {path}=NEW (e.g. data/mnist/{example}.txt, written by `netspec data mnist`)")
    return path


def _transforms(layer: Message, ctx: _Ctx, where: str) -> list:
    tp = layer.get("transform_param")
    if not isinstance(tp, Message):
        return []
    out = []
    for k in tp.names():
        line = tp.line_of(k)
        v = _plain(tp.get(k))
        if k == "mean_file":
            out.append({"type": "mean", "file": _mean_file(v, ctx, line, where)})
        elif k == "mean_value":
            out.append({"type": "mean", "values": [float(x) for x in tp.all(k)]})
        elif k == "mirror":
            if v:
                out.append({"type": "mirror"})
        elif k == "scale":
            pass
        else:
            ctx.problem(line, f"layer '{where}': transform_param {k} is not supported (netspec has scale, "
                              "mean_file, mean_value, mirror)")
    if tp.has("scale"):                      # Caffe subtracts the mean, then scales
        out.append({"type": "scale", "factor": float(tp.get("scale"))})
    return out


def _prepared_scale(listing):
    """The ``scale`` a netspec preparer recorded in the first shard of a list file (None if unknown), the
    list looked up as the data layer will (the working directory first)."""
    if not isinstance(listing, str):
        return None
    try:
        shards = list_file_paths(resolve(listing, "."))
        with h5py.File(shards[0], "r") as f:
            v = f.attrs.get("scale")
        return None if v is None else float(v)
    except (OSError, UnicodeDecodeError, ValueError, IndexError):
        return None


def _mean_file(path: str, ctx: _Ctx, line, where: str) -> str:
    """A Caffe mean ``.binaryproto`` as the ``mean.h5`` netspec's mean transform reads (written beside the
    config); a path given with --data is used as it is."""
    if path in ctx.data_map:
        return ctx.data_map[path]
    if not os.path.isfile(path):
        ctx.problem(line, f"layer '{where}': mean_file '{path}' not found; give the .binaryproto's place, or a "
                          f"netspec mean.h5, with --data {path}=NEW")
        return path
    try:
        with open(path, "rb") as f:
            mean = read_blob(pb.fields(f.read()))
    except (OSError, ProtoError) as exc:
        ctx.problem(line, f"layer '{where}': mean_file '{path}' cannot be read ({exc})")
        return path
    out = os.path.join(ctx.out_dir, os.path.splitext(os.path.basename(path))[0] + ".h5")
    os.makedirs(ctx.out_dir, exist_ok=True)
    with h5py.File(out, "w") as f:
        f["mean"] = mean.reshape(mean.shape[-3:]).astype(np.float32)
    ctx.notes.append(f"{path}: converted to {out}")
    return os.path.abspath(out)


def _layer(layer: Message, ctx: _Ctx, types: dict, stage, blob_names: dict) -> LDict | None:
    name = str(layer.get("name", f"layer{layer.line}"))
    ctype = str(layer.get("type", ""))
    line = layer.line
    phase = _phase(layer, ctx, name, stage)
    if phase is False:
        return None
    out = LDict()
    out.line, out.key_lines = line, {}
    used: set = set()
    bottoms = [blob_names.get(str(b), str(b)) for b in layer.all("bottom")]
    tops = [str(t) for t in layer.all("top")]
    if ctype in ("Data", "ImageData"):
        dp = layer.get("data_param") or layer.get("image_data_param") or Message(line)
        src = str(dp.get("source", ""))
        out.update({"name": name, "type": "HDF5Data",
                    "source": _data_source(src, ctx, dp.line_of("source"), name, "reads the "
                                           + str(dp.get("backend", "LEVELDB")) + " database"),
                    "batch_size": int(dp.get("batch_size", 1))})
        for k in dp.names():
            if k not in ("source", "batch_size", "backend"):
                ctx.problem(dp.line_of(k), f"layer '{name}': data_param {k} is not supported")
        if phase == "train":
            out["shuffle"] = True
            ctx.notes.append(f"{ctx.path}:{line}: layer '{name}': the HDF5 data is shuffled every epoch "
                             "(Caffe reads a database in its stored order)")
        used |= {("", "data_param"), ("", "image_data_param"), ("", "transform_param")}
        cls = registry.layers.get("HDF5Data")
        message = None
    else:
        cls = types.get(ctype)
        if cls is None:
            ctx.problem(layer.line_of("type"), f"layer '{name}': Caffe type '{ctype}' has no netspec counterpart "
                                               f"(netspec imports {', '.join(sorted(types))}, Data)")
            return None
        message = layer.get(cls.caffe_message) if cls.caffe_message else None
        out.update({"name": name, "type": cls.type_name})
        mapped = _map_params(cls, layer, message, ctx, name, used)
        out.update(mapped)
        out.key_lines.update(mapped.key_lines)
        if ctype == "Input":
            dims = out.pop("shape", None)
            if not dims or len(dims) < 2:
                ctx.problem(line, f"layer '{name}': input_param needs a shape with at least 2 dims (N and more)")
            else:
                out["batch_size"], out["shape"] = dims[0], dims[1:]
        if ctype == "HDF5Data":
            out["source"] = ctx.data_map.get(out.get("source"), out.get("source"))
        if ctype == "SoftmaxWithLoss" and "ignore_label" in out:
            lp = layer.get("loss_param")
            norm = str(lp.get("normalization", "")) if isinstance(lp, Message) else ""
            if norm not in ("BATCH_SIZE", "FULL") and not (isinstance(lp, Message) and lp.has("normalize")
                                                           and not _plain(lp.get("normalize"))):
                ctx.notes.append(f"{ctx.path}:{line}: layer '{name}': with ignore_label Caffe divides the loss by "
                                 "the places not ignored (VALID); netspec divides by every place")
            if isinstance(lp, Message):
                used |= {("loss_param", "normalization"), ("loss_param", "normalize")}
        for i, block in enumerate(layer.all("param")):
            for k in block.names():
                if (f"param[{i}]", k) in used or k == "name" and "param_names" in out:
                    continue
                if cls.__dict__.get("caffe_ignores_param") and k in ("lr_mult", "decay_mult") \
                        and float(block.get(k)) == 0:
                    continue
                ctx.problem(block.line_of(k), f"layer '{name}' ({ctype}): param {{ {k} }} is not supported here")
    tr = _transforms(layer, ctx, name)
    prepared = _prepared_scale(out.get("source")) if tr and tr[-1]["type"] == "scale" else None
    if prepared:                             # the HDF5 data holds pixels already scaled when prepared
        factor = tr[-1]["factor"] / prepared
        if abs(factor - 1) < 1e-9:
            tr.pop()
            ctx.notes.append(f"{ctx.path}:{line}: layer '{name}': transform_param scale left out: "
                             f"{out['source']} was prepared with that scale (`netspec data`)")
        else:
            tr[-1]["factor"] = factor
            ctx.notes.append(f"{ctx.path}:{line}: layer '{name}': transform_param scale {tr[-1]['factor'] * prepared:g}"
                             f" becomes {factor:.9g}: {out['source']} was prepared with scale {prepared:g}")
    if tr:
        out["transforms"] = tr
    messages = {m for m, _ in used if m and not m.startswith("param[")}
    for k in layer.names():
        if k in LAYER_FIELDS or ("", k) in used:
            continue
        if k in messages or k == cls.caffe_message:
            sub = layer.get(k)
            for kk in (sub.names() if isinstance(sub, Message) else []):
                if (k, kk) not in used:
                    ctx.problem(sub.line_of(kk), f"layer '{name}' ({ctype}): {k} {kk} is not supported")
            continue
        ctx.problem(layer.line_of(k), f"layer '{name}' ({ctype}): {k} is not supported for this layer type")
    if layer.has("loss_weight") and not cls.has_loss and float(layer.get("loss_weight")) != 0:
        ctx.problem(layer.line_of("loss_weight"), f"layer '{name}': loss_weight on a layer that is not a loss")
    if phase:
        out["phase"] = phase
    # wiring: a loss writes no top in netspec; a layer that cannot run in place writes a new blob
    if cls.n_tops[1] == 0:
        tops = []
    renamed = []
    for t in tops:
        if t in [str(b) for b in layer.all("bottom")]:
            if cls.inplace_ok:                        # in place on the blob's current version
                renamed.append(blob_names.get(t, t))
                continue
            blob_names[t] = f"{t}-{name}"             # netspec's layer cannot: a new blob
        else:
            blob_names[t] = t
        renamed.append(blob_names[t])
    out["bottoms"] = bottoms
    if renamed or cls.n_tops[0] > 0:
        out["tops"] = renamed
    return out


def _solver(sol: Message, path: str, ctx: _Ctx) -> tuple[LDict, list, int | None]:
    """(solver block, coffee breaks, seed) from a Caffe solver file; problems name the solver's lines."""
    sctx = _Ctx(path, ctx.problems, ctx.notes)
    from ..config.solver import SolverParams

    out = LDict()
    out.line, out.key_lines = 1, {}
    used = {"net", "train_net", "test_net", "solver_mode", "device_id", "snapshot_prefix", "test_iter",
            "test_state", "test_compute_loss", "snapshot_format", "debug_info", "snapshot_after_train",
            "test_initialization", "average_loss", "random_seed", "lr_policy", "solver_type", "iter_size"}
    method = "sgd"
    if sol.has("type") or sol.has("solver_type"):
        key = "type" if sol.has("type") else "solver_type"
        v = str(sol.get(key))
        values = next(vals for f, n, vals in caffe_fields(SolverParams) if f.name == "method")
        norm = {k.lower(): m for k, m in values.items()}
        if v.lower() not in norm:
            sctx.problem(sol.line_of(key), f"solver {key}: {v} is not supported (netspec has {', '.join(values)})")
        else:
            method = norm[v.lower()]
        used.add("type")
    out["method"] = method
    for f, name, _ in caffe_fields(SolverParams):
        if f.name != "method" and sol.has(name):
            out[f.name], out.key_lines[f.name] = _plain(sol.get(name)), sol.line_of(name)
            used.add(name)
    mcls = registry.solvers.get(method)
    for f, name, _ in caffe_fields(mcls):
        if sol.has(name):
            out[f.name], out.key_lines[f.name] = float(sol.get(name)), sol.line_of(name)
            used.add(name)
    policy = str(sol.get("lr_policy", "fixed"))
    lr = LDict({"type": policy})
    lr.line, lr.key_lines = sol.line_of("lr_policy"), {}
    if policy not in registry.lr_policies or policy in ("staged", "decay_on_validation"):
        sctx.problem(sol.line_of("lr_policy"), f"lr_policy '{policy}' has no netspec counterpart")
    else:
        pcls = registry.lr_policies.get(policy)
        for f, name, _ in caffe_fields(pcls):
            if sol.has(name):
                vals = [_plain(v) for v in sol.all(name)]
                lr[f.name] = vals if name in REPEATED else vals[0]
                lr.key_lines[f.name] = sol.line_of(name)
                used.add(name)
            elif name == "max_iter" and sol.has("max_iter"):
                lr[f.name] = sol.get("max_iter")
    out["lr_policy"] = lr
    out.key_lines["lr_policy"] = lr.line
    if mcls.uses_momentum:
        out["mom_policy"] = {"type": "fixed", "value": float(sol.get("momentum", 0.0))}
        out.key_lines["mom_policy"] = sol.line_of("momentum")
    used |= {"momentum", "base_lr", "gamma", "power", "stepsize", "stepvalue", "delta", "momentum2", "rms_decay"}
    if int(sol.get("iter_size", 1)) != 1:
        sctx.problem(sol.line_of("iter_size"), "iter_size (gradient accumulation) is not supported; raise the "
                                               "batch_size instead")
    coffee = []
    for cname in ("TrainingSummary", "ValidationPerformance", "Snapshot"):
        ccls = registry.coffee_breaks.get(cname)
        key = ccls.caffe_schedule
        used.add(key)
        if int(sol.get(key, 0) or 0) > 0:
            cb = LDict({"type": cname, "every_n_iter": int(sol.get(key))})
            cb.line, cb.key_lines = sol.line_of(key), {}
            coffee.append(cb)
    for k in sol.names():
        if k not in used:
            sctx.problem(sol.line_of(k), f"solver option {k} is not supported")
    for k in ("test_iter", "snapshot_prefix", "average_loss", "test_initialization"):
        if sol.has(k):
            ctx.notes.append(f"{path}:{sol.line_of(k)}: {k} has no netspec counterpart: netspec validates on the "
                             "whole test set, writes snapshots to the run folder and smooths the shown loss "
                             "by loss_smoothing")
            break
    seed = int(sol.get("random_seed")) if sol.has("random_seed") else None
    return out, coffee, seed


@dataclass
class Imported:
    config: dict                # the netspec config, plain
    spec: object                # the validated NetSpec
    notes: list


def import_net(net_path: str, solver_path: str | None = None, data_map: dict | None = None,
               stage: str | None = None, out_dir: str = ".") -> Imported:
    """Translate a Caffe net (and solver) into a validated netspec config.  Raises :class:`ImportProblems`
    listing everything that cannot be imported, or a :class:`SpecError` naming the prototxt's lines."""
    from ..config.spec import parse_spec

    ctx = _Ctx(net_path, data_map=dict(data_map or {}), out_dir=out_dir)
    try:
        net = pb.read_text(net_path)
        sol = pb.read_text(solver_path) if solver_path else None
    except ProtoError as exc:
        raise ImportProblems([str(exc)]) from None
    if sol is not None and (sol.has("layer") or sol.has("layers")):
        raise ImportProblems([f"{solver_path}:{sol.line_of('layer')}: this is a net (it has layers), not a solver; "
                              "give the solver's .prototxt with --solver"])
    if stage is None and sol is not None and sol.all("test_state"):
        stages = [str(s) for s in sol.all("test_state")[-1].all("stage")]
        stage = stages[0] if stages else None
    if not net.has("layer") and not net.has("layers") and (net.has("base_lr") or net.has("net")):
        raise ImportProblems([f"{net_path}:1: this is a solver file (it has {'net' if net.has('net') else 'base_lr'}:); "
                              "give the net's .prototxt as NET and this file with --solver"])
    if net.has("layers"):
        ctx.problem(net.line_of("layers"), "the net uses Caffe's V1 'layers' format; upgrade it with Caffe's "
                                           "upgrade_net_proto_text first (netspec reads 'layer')")
    types = caffe_layer_types()
    layers = LList()
    layers.line, layers.item_lines = net.line_of("layer"), []
    blob_names: dict = {}
    inputs = [str(i) for i in net.all("input")]
    for i, name in enumerate(inputs):          # deploy nets of the old style: input + input_dim / input_shape
        dims = [int(d) for d in net.all("input_dim")[4 * i:4 * i + 4]]
        shapes = net.all("input_shape")
        if i < len(shapes):
            dims = [int(d) for d in shapes[i].all("dim")]
        if len(dims) < 2:
            ctx.problem(net.line_of("input"), f"input '{name}' needs input_dim or input_shape (N and more)")
            continue
        item = LDict({"name": name, "type": "Input", "batch_size": dims[0], "shape": dims[1:], "tops": [name]})
        item.line, item.key_lines = net.line_of("input"), {}
        layers.append(item)
        layers.item_lines.append(item.line)
    for k in net.names():
        if k not in ("name", "layer", "layers", "input", "input_dim", "input_shape", "force_backward", "state"):
            ctx.problem(net.line_of(k), f"net option {k} is not supported")
    names: set = set()
    for layer in net.all("layer"):
        item = _layer(layer, ctx, types, stage, blob_names)
        if item is not None:
            if item["name"] in names:       # Caffe lets the train and test versions share a name
                base, k = item["name"], 2
                item["name"] = f"{base}-{item['phase']}" if item.get("phase") else f"{base}-{k}"
                while item["name"] in names:
                    k += 1
                    item["name"] = f"{base}-{k}"
            names.add(item["name"])
            layers.append(item)
            layers.item_lines.append(layer.line)
    raw = LDict({"name": str(net.get("name", os.path.splitext(os.path.basename(net_path))[0])).lower()
                 .replace(" ", "-"), "layers": layers})
    raw.line, raw.key_lines = 1, {"name": net.line_of("name"), "layers": layers.line}
    if sol is not None:
        solver, coffee, seed = _solver(sol, solver_path, ctx)
        from ..config.solver import parse_solver
        sprobs: list = []
        parse_solver(solver, Where(solver_path, 1), sprobs)
        ctx.problems += [str(p) for p in sprobs]
        raw["solver"] = solver
        if coffee:
            cl = LList(coffee)
            cl.line, cl.item_lines = 1, [c.line for c in coffee]
            raw["coffee_breaks"] = cl
        if seed is not None:
            raw["seed"] = seed
    if ctx.problems:
        raise ImportProblems(ctx.problems)
    spec = parse_spec(raw, net_path)
    return Imported(_to_plain(raw), spec, ctx.notes)


def _to_plain(v):
    if isinstance(v, dict):
        return {k: _to_plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_to_plain(x) for x in v]
    if isinstance(v, tuple):
        return [_to_plain(x) for x in v]
    return v


# --------------------------------------------------------------------------------------------- weights
def read_blob(f: dict) -> np.ndarray:
    """A BlobProto's array in its shape (``shape`` or the legacy num/channels/height/width)."""
    data = pb.floats(f.get(5, []))
    if not data.size and 8 in f:
        data = pb.floats(f[8], "<f8")
    if 7 in f:
        shape = pb.ints(pb.fields(f[7][0][1]).get(1, []))
    else:
        shape = [pb.ints(f.get(k, [(0, 1)]))[0] for k in (1, 2, 3, 4)]
    if int(np.prod(shape)) != data.size:
        raise ProtoError(f"a blob of shape {shape} holds {data.size} values")
    return data.reshape(shape).astype(np.float32)


def read_caffemodel(path: str) -> dict[str, list[np.ndarray]]:
    """{layer name: [blob, ...]} of a binary ``.caffemodel`` or an HDF5 ``.caffemodel.h5``."""
    if not os.path.isfile(path):
        raise ImportProblems([f"{path}: no such file"])
    if h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as f:
                if "data" not in f:
                    raise ImportProblems([f"{path}: an HDF5 file without Caffe's 'data' group (not a "
                                          ".caffemodel.h5)"])
                return {name: [np.asarray(g[str(i)], np.float32) for i in range(len(g))]
                        for name, g in f["data"].items()}
        except (OSError, KeyError) as exc:
            raise ImportProblems([f"{path}: cannot read the HDF5 caffemodel ({exc})"]) from None
    try:
        with open(path, "rb") as f:
            net = pb.fields(f.read())
        out = {}
        for num, name_f, blobs_f in ((100, 1, 7), (2, 4, 6)):       # layer, and the legacy V1 layers
            for _, raw in net.get(num, []):
                lf = pb.fields(raw)
                out[pb.string(lf.get(name_f, []))] = [read_blob(pb.fields(b)) for _, b in lf.get(blobs_f, [])]
        return out
    except ProtoError as exc:
        raise ImportProblems([f"{path}: not a readable caffemodel ({exc})"]) from None


def weights_tree(spec, blobs: dict, path: str, notes: list) -> dict:
    """{layer: {param: array}} for the snapshot of an imported net, from Caffe's blobs by declared order.
    Legacy 4-D shapes (1×1×out×in) lose their leading ones to the rank the parameter has."""
    params: dict = {}
    problems = []
    seen = set()
    for ls in spec.layers:
        if ls.name in seen:
            continue
        seen.add(ls.name)
        order = ls.cls.caffe_blobs
        if not order:
            continue
        got = blobs.get(ls.name)
        if got is None:
            notes.append(f"{path}: has no blobs for layer '{ls.name}'; it keeps its initialization")
            continue
        if ls.type == "BatchNorm" and getattr(ls.params, "scale_bias", False):
            order = order + (("scale", 1), ("bias", 1))
        if len(got) > len(order):
            problems.append(f"{path}: layer '{ls.name}' has {len(got)} blobs; {ls.type} takes {len(order)}")
            continue
        for (pname, rank), arr in zip(order, got):
            while arr.ndim > rank and arr.shape[0] == 1:
                arr = arr.reshape(arr.shape[1:])
            params.setdefault(ls.name, {})[pname] = np.ascontiguousarray(arr, np.float32)
    left = sorted(k for k in set(blobs) - seen if blobs[k])          # layers that carry weights
    if left:
        notes.append(f"{path}: blobs of layers the net does not have were not used: {', '.join(left)}")
    if problems:
        raise ImportProblems(problems)
    return params


def write_caffemodel(path: str, layers: dict, hdf5: bool = False) -> None:
    """Write {layer: [arrays]} as a binary ``.caffemodel`` (NetParameter with LayerParameter name and blobs)
    or Caffe's HDF5 variant — for exchanging weights and for the tests."""
    if hdf5:
        with h5py.File(path, "w") as f:
            g = f.create_group("data")
            for name, arrs in layers.items():
                lg = g.create_group(name)
                for i, a in enumerate(arrs):
                    lg[str(i)] = np.asarray(a, np.float32)
        return
    out = bytearray()
    for name, arrs in layers.items():
        body = pb.put_string(1, name)
        for a in arrs:
            a = np.asarray(a, np.float32)
            blob = pb.put_bytes(7, pb.put_ints(1, a.shape)) + pb.put_floats(5, a.ravel())
            body += pb.put_bytes(7, blob)
        out += pb.put_bytes(100, body)
    with open(path, "wb") as f:
        f.write(bytes(out))


# ------------------------------------------------------------------------------------------- the command
LAYER_KEYS = ("name", "type", "phase", "bottoms", "tops")


def dump_config(config: dict, origin: str) -> str:
    """The imported config as YAML in the gallery's style: one flow mapping per layer."""
    import yaml

    def flow(d):
        return yaml.safe_dump(d, default_flow_style=True, width=10**6, sort_keys=False).strip()

    lines = [f"# imported from {origin} by `netspec import caffe`", f"name: {config['name']}"]
    if "seed" in config:
        lines.append(f"seed: {config['seed']}")
    lines.append("layers:")
    for layer in config["layers"]:
        ordered = {k: layer[k] for k in LAYER_KEYS if k in layer and layer[k] != []}
        ordered.update({k: v for k, v in layer.items() if k not in LAYER_KEYS})
        lines.append(f"  - {flow(ordered)}")
    if "solver" in config:
        lines.append("solver:")
        for k, v in config["solver"].items():
            lines.append(f"  {k}: {flow(v) if isinstance(v, (dict, list)) else v}")
    if config.get("coffee_breaks"):
        lines.append("coffee_breaks:")
        lines += [f"  - {flow(cb)}" for cb in config["coffee_breaks"]]
    return "\n".join(lines) + "\n"


def import_caffe(net_path: str, out_dir: str, solver_path: str | None = None, weights: str | None = None,
                 data_map: dict | None = None, stage: str | None = None) -> dict:
    """``netspec import caffe``: write OUT_DIR/<name>.yaml (and, with ``weights``, OUT_DIR/<name>-caffe.h5, a
    snapshot that ``--weights`` and ``netspec test`` accept).  Returns {"config", "weights", "notes"}."""
    from ..config.spec import parse_spec
    from ..training import snapshot

    imported = import_net(net_path, solver_path, data_map, stage, out_dir)
    os.makedirs(out_dir, exist_ok=True)
    name = imported.config["name"]
    cfg_path = os.path.join(out_dir, f"{name}.yaml")
    text = dump_config(imported.config, " + ".join(p for p in (net_path, solver_path) if p))
    parse_spec(text, cfg_path)                            # what is written reads back as the same net
    tmp = cfg_path + f".tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, cfg_path)
    out = {"config": cfg_path, "weights": None, "notes": imported.notes}
    if weights:
        tree = weights_tree(imported.spec, read_caffemodel(weights), weights, imported.notes)
        snap = os.path.join(out_dir, f"{name}-caffe.h5")
        snapshot.save(snap, {"iteration": 0, "params": tree, "origin": {"caffemodel": os.path.abspath(weights)}})
        out["weights"] = snap
    return out
