"""The package reads as the data flow: each stage a folder, and no module imports against the flow."""
import ast
import os

import pytest

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "netspec")
# stages from the bottom up: a module may import its own stage and the stages below it
ORDER = ["config", "backend", "layers", "net", "training", "datasets", "interchange", "tools"]
TOP = {"__init__.py": "tools", "__main__.py": "tools", "testing.py": "tools"}


def stage_of(path):
    rel = os.path.relpath(path, PKG)
    return TOP[rel] if rel in TOP else rel.split(os.sep)[0]


def imports(path):
    """The netspec stages a module imports (relative imports resolved)."""
    tree = ast.parse(open(path).read())
    rel = os.path.relpath(path, PKG).split(os.sep)
    pkg = ["netspec"] + rel[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[:len(pkg) - (node.level - 1)]
                mod = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.startswith("netspec"):
                mod = node.module.split(".")
            else:
                continue
            names = [mod[1]] if len(mod) > 1 else [a.name for a in node.names]
            for n in names:
                yield node.lineno, n
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("netspec."):
                    yield node.lineno, a.name.split(".")[1]


def modules():
    for root, dirs, files in os.walk(PKG):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for f in files:
            if f.endswith(".py"):
                yield os.path.join(root, f)


def test_every_stage_is_a_folder():
    loose = [f for f in os.listdir(PKG) if f.endswith(".py") and f not in TOP]
    assert not loose, f"modules outside a stage folder: {loose}"
    assert all(os.path.isdir(os.path.join(PKG, s)) for s in ORDER)


@pytest.mark.parametrize("path", sorted(modules()), ids=lambda p: os.path.relpath(p, PKG))
def test_no_import_against_the_flow(path):
    here = stage_of(path)
    for line, target in imports(path):
        if target in ORDER:
            assert ORDER.index(target) <= ORDER.index(here), \
                f"{os.path.relpath(path, PKG)}:{line}: the {here} stage imports the {target} stage"


def test_the_kernels_know_no_layers():
    for path in modules():
        if stage_of(path) == "backend":
            assert not any(t in ("layers", "net", "training") for _, t in imports(path))


# numpy in a layer only for host-side bookkeeping: random orders and draws, index ranges, the user's arrays,
# HDF5 read buffers, dtypes; every computation on a blob goes through the backend
HOST_NUMPY = {"random", "arange", "asarray", "ascontiguousarray", "zeros", "s_", "ndarray", "float32", "float64",
              "int64", "int32", "bool_", "dtype", "deg2rad", "concatenate"}      # concatenate: file parts


def numpy_attributes(path):
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "np":
            yield node.lineno, node.attr


@pytest.mark.parametrize("path", sorted(p for p in modules() if stage_of(p) == "layers"),
                         ids=lambda p: os.path.relpath(p, PKG))
def test_layers_compute_only_through_the_backend(path):
    bad = [f"{os.path.relpath(path, PKG)}:{line}: np.{attr}" for line, attr in numpy_attributes(path)
           if attr not in HOST_NUMPY]
    assert not bad, "numpy math in a layer (use the backend): " + ", ".join(bad)


def test_host_numpy_zeros_only_for_host_buffers():
    for path in modules():
        if stage_of(path) == "layers":
            for line, attr in numpy_attributes(path):
                if attr == "zeros":
                    src = open(path).read().splitlines()[line - 1]
                    assert "bufs" in src or "draws" in src, f"{path}:{line}: allocate with self.alloc: {src.strip()}"


def test_the_readme_layout_names_every_module():
    readme = open(os.path.join(os.path.dirname(PKG), "README.md")).read()
    table = readme[readme.index("## Layout"):]
    for path in modules():
        rel = os.path.relpath(path, PKG)
        folder, name = os.path.split(rel)
        if name == "__init__.py" and folder:
            continue
        assert f"`{name}`" in table or f"`netspec/{rel}`" in table or f"(`{name}`" in table, \
            f"README's Layout does not mention netspec/{rel}"
    for stage in ORDER:
        assert f"`netspec/{stage}/`" in table
