"""Each registry walked: every op, init scheme, optimizer, loss and schedule declares what the rest of
dlc reads from it, and docs/language.md names each one with the keys and defaults the registry has."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from dlc.compiler.attrs import REQUIRED
from dlc.compiler.inits import INITS, InitSpec
from dlc.compiler.losses import LOSSES
from dlc.compiler.ops import REGISTRY
from dlc.compiler.optimizers import OPTIMIZERS
from dlc.compiler.schedules import SCHEDULES, learning_rate
from dlc.compiler.statements import REGULARIZE, TRAIN
from conftest import ROOT

LANGUAGE = (ROOT / "docs" / "language.md").read_text()


def usage_block() -> str:
    """The training statements' usage, as docs/language.md writes it."""
    return LANGUAGE.split("## Training statements", 1)[1].split("```", 2)[1]


def documented_keys(word: str, kind: str = "") -> dict[str, str]:
    """key -> default text, for `word kind k=v ...` in the usage block (alternatives split by |)."""
    block = usage_block()
    lines = re.split(r"\n(?=\S)", block)
    text = next(line for line in lines if line.startswith(word + " "))
    text = text[len(word):]
    if kind:
        alt = next(a for a in re.split(r"\|", text) if re.match(rf"\s*{kind}\b", a))
        text = alt + " " + (re.search(r"\(all: ([^)]*)\)", text) or [None, ""])[1]
    return dict(re.findall(r"(\w+)=([^\s\]|)…]+)", text))


def _value(text: str) -> float:
    return float(text)


def test_every_name_of_every_registry_is_documented():
    missing = [f"op {op.name}" for op in REGISTRY if not re.search(rf"`{op.name}\b", LANGUAGE)]
    missing += [f"init {n}" for n in INITS if not re.search(rf"`{n}\b", LANGUAGE)]
    block = usage_block()
    missing += [f"loss {n}" for n in LOSSES if not re.search(rf"\b{n}\b", block)]
    missing += [f"optimizer {n}" for n in OPTIMIZERS if not re.search(rf"\b{n}\b", block)]
    missing += [f"schedule {n}" for n in SCHEDULES if not re.search(rf"\b{n}\b", block)]
    assert missing == []


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_the_documented_optimizer_keys_and_defaults_are_the_registry_s(name):
    keys = documented_keys("optimizer", name)
    for key, attr in OPTIMIZERS[name].attrs.items():
        if attr.type == "bool":
            assert f"[{key}]" in usage_block(), key
            continue
        assert key in keys, f"optimizer {name}: {key} is not documented"
        assert _value(keys[key]) == attr.default, (name, key)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_the_documented_schedule_keys_defaults_and_formula_are_the_registry_s(name):
    keys = documented_keys("schedule", name)
    rule = SCHEDULES[name]
    for key, attr in {**rule.attrs, "warmup": None}.items():
        if attr is not None and attr.type == "epochs":  # a tuple: (30, 60, 90)
            assert f"{key}=({', '.join(map(str, attr.default))})" in usage_block(), (name, key)
            continue
        assert key in keys, f"schedule {name}: {key} is not documented"
        if attr is not None:
            assert _value(keys[key]) == attr.default, (name, key)
    assert f"{name} `{rule.formula}`" in LANGUAGE
    hp = {k: a.default for k, a in rule.attrs.items()}
    assert learning_rate(0.5, name, {**hp, "warmup": 0}, 0, 10) == pytest.approx(0.5)  # every schedule starts at lr
    assert learning_rate(0.5, name, {**hp, "warmup": 3}, 0, 10) == pytest.approx(0.125)  # warm-up: lr·1/4


def test_the_documented_regularize_and_train_defaults_are_the_registry_s():
    for word, attrs in (("regularize", REGULARIZE), ("train", TRAIN)):
        keys = documented_keys(word)
        for key, attr in attrs.items():
            if attr.default is None or attr.default is REQUIRED or attr.type == "bool":
                continue
            assert key in keys, f"{word} {key}"
            assert _value(keys[key]) == attr.default, (word, key)


@pytest.mark.parametrize("name", sorted(INITS))
def test_every_init_scheme_samples_its_formula(name):
    scheme = INITS[name]
    args = {k: (0.3 if k != "value" else 0.7) for k in scheme.attrs}
    init = InitSpec(name, args)
    fan_in, fan_out = 200, 50
    from dlc.runtime.weights import sample_init
    w = sample_init(init, np.random.default_rng(0), (200, 300), fan_in, fan_out, "float64")
    s = scheme.scale(fan_in, fan_out, args)
    if scheme.distribution == "constant":
        assert np.all(w == s)
    elif scheme.distribution == "orthogonal":  # (200, 300): orthonormal rows, times the gain
        np.testing.assert_allclose(w @ w.T, s * s * np.eye(200), atol=1e-10)
    elif scheme.distribution == "unit_forget":  # four gates of 50 rows: the second (forget) quarter is 1
        assert np.all(w[50:100] == s) and not np.any(w[:50]) and not np.any(w[100:])
    elif scheme.distribution == "padded_normal":  # an embedding table: row 0 (the padding id) zero
        assert not np.any(w[0]) and w[1:].std() == pytest.approx(s, rel=0.01)
    elif scheme.distribution == "normal":
        assert abs(w.mean()) < 0.01 * max(s, 1e-3) + 1e-3 and w.std() == pytest.approx(s, rel=0.01)
    else:
        assert w.min() >= -s and w.max() <= s and w.std() == pytest.approx(s / math.sqrt(3), rel=0.01)
    assert scheme.formula in LANGUAGE or scheme.formula in ("0", "1", "value", "std", "limit") \
        or name in LANGUAGE  # formulas in conventions.md


def test_every_gradient_free_optimizer_has_a_numpy_generation():
    """Its declaration is the compiler's; the generation that runs it is the NumPy engine's."""
    from dlc.compiler.optimizers import OPTIMIZERS
    from dlc.runtime.numpy_engine.evolution import GENERATIONS
    assert sorted(GENERATIONS) == sorted(n for n, rule in OPTIMIZERS.items() if not rule.uses_gradients)


def test_every_loss_has_a_numpy_formula():
    """The runtime's NumPy value, gradient and probabilities (runtime/losses.py): one per declared loss."""
    from dlc.runtime.losses import FORMULAS
    assert sorted(FORMULAS) == sorted(LOSSES)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_declares_its_labels_output_and_expected_start(name):
    loss = LOSSES[name]
    assert loss.task in ("classification", "regression")
    assert loss.labels in ("index", "binary", "value")
    assert (loss.labels == "value") == (loss.task == "regression")
    assert loss.fuses is None or REGISTRY[loss.fuses].kind == "activation"
    units = 1 if loss.labels == "binary" else 4
    y = np.array([0, 1, 1, 0]) if loss.task == "classification" else np.array([0.5, -1.0, 2.0, 0.0])
    value, formula = loss.expected_initial_loss(units, y)
    assert math.isfinite(value) and formula
    if loss.fuses:  # the output it fuses with is the one it expects
        assert loss.check_output(loss.fuses, units) is None
        assert loss.check_output("relu", units) is not None


def test_every_op_declares_what_it_is():
    for op in REGISTRY:
        assert op.kind in ("layer", "activation", "norm", "dropout", "reshape", "merge"), op.name
        if op.nonlinear:
            assert op.kind == "activation", op.name
        if op.dies:
            y = np.zeros((3, 4))
            assert op.dead(y).shape == (4,) and op.dead(y).all()
    assert [op.name for op in REGISTRY if op.kind == "activation" and not op.nonlinear] == ["linear"]


def test_the_version_is_one_and_lives_alone():
    """dlc/version.py imports nothing (the modules that read the version are not tied into one import cycle
    through dlc/__init__), and pyproject.toml says the same version."""
    import ast
    import re

    import dlc
    from dlc.version import __version__
    root = ROOT
    tree = ast.parse((root / "dlc" / "version.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert dlc.__version__ == __version__
    assert re.search(r'^version = "([^"]+)"', (root / "pyproject.toml").read_text(), re.M).group(1) == __version__


def test_architecture_md_names_every_module():
    """ARCHITECTURE.md is a checked map: a module it does not name fails here (by its path, or by its file
    name where the document lists a folder's files)."""
    root = ROOT
    text = (root / "ARCHITECTURE.md").read_text()
    missing = [str(p.relative_to(root)) for folder in ("grammar", "compiler", "runtime", "dlc")
               for p in sorted((root / folder).rglob("*.py"))
               if p.name != "__init__.py" and str(p.relative_to(root)) not in text and f"`{p.name}`" not in text]
    assert not missing, f"ARCHITECTURE.md has no line for: {', '.join(missing)}"


def _imports(folder: Path) -> dict[str, set[str]]:
    """{module file: every module it imports (absolute names; a relative import as written under dlc.)}."""
    import ast
    out = {}
    for path in sorted(folder.rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module if not node.level else f"(relative).{node.module}")
        out[str(path.relative_to(folder.parent))] = names
    return out


@pytest.mark.parametrize("folder, forbidden", [
    ("compiler", ("dlc.runtime", "torch", "onnxruntime")),  # the compiler describes; engines implement
    ("runtime/torch_engine", ("dlc.runtime.numpy_engine",)),  # the engines are peers: neither imports the other
    ("runtime/numpy_engine", ("dlc.runtime.torch_engine", "torch")),
])
def test_the_layers_import_only_downwards(folder, forbidden):
    root = ROOT
    bad = {f: sorted(n for n in names if n.startswith(forbidden)) for f, names in _imports(root / folder).items()}
    assert not {f: n for f, n in bad.items() if n}, f"{folder} imports what it must not: {bad}"


def test_every_op_has_a_numpy_kernel_and_the_compiler_holds_none():
    """The compiler describes ops; the NumPy engine implements them (runtime/numpy_engine/kernels/)."""
    from dlc.compiler.ops import REGISTRY
    from dlc.runtime.numpy_engine.kernels import KERNELS
    assert sorted(KERNELS) == sorted(REGISTRY.names())
    for name, k in KERNELS.items():
        assert isinstance(k, type(REGISTRY[name])), name  # a kernel is its op's declaration, extended
        assert "forward" not in vars(type(REGISTRY[name])) and "backward" not in vars(type(REGISTRY[name])), name


def test_every_sub_package_is_installed():
    """pyproject.toml lists every package by name (the top-level folders map to dlc.*): a folder with an
    __init__.py it does not list is missing from `pip install .` (in-process tests still import it from the
    checkout; a subprocess of an installed dlc does not)."""
    import re
    root = ROOT
    text = (root / "pyproject.toml").read_text()
    listed = set(re.findall(r'"(dlc(?:\.[a-z_]+)*)"', text.split("[tool.setuptools]")[1].split("[tool.setuptools.package-dir]")[0]))
    folders = {"grammar": "dlc.grammar", "compiler": "dlc.compiler", "runtime": "dlc.runtime", "dlc": "dlc"}
    found = set()
    for folder, package in folders.items():
        for init in (root / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(root / folder)
            found.add(".".join([package, *rel.parts]))
    assert found <= listed, f"not in pyproject.toml's packages: {sorted(found - listed)}"


def _module_graph() -> dict[str, set[str]]:
    """{dlc module: the dlc modules it imports, anywhere in it (function-level imports too)}."""
    import ast
    root = ROOT
    files = {}
    for folder, package in (("dlc", "dlc"), ("grammar", "dlc.grammar"), ("compiler", "dlc.compiler"),
                            ("runtime", "dlc.runtime")):
        for path in (root / folder).rglob("*.py"):
            parts = path.relative_to(root / folder).with_suffix("").parts
            if package == "dlc" and len(parts) > 1:
                continue
            name = ".".join([package, *parts]).removesuffix(".__init__")
            files[name] = path
    graph = {}
    for name, path in files.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else [])) \
                    if node.level else node.module
                for a in node.names:
                    found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in files else base)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in files and m != name}
    return graph


def test_no_module_imports_itself_through_others():
    """No import cycle among dlc's modules, even through imports inside functions (they were: spec <->
    overrides, datasets <-> images, the kernels' package and its modules): each module can be read, and
    moved, after the modules it stands on."""
    graph = _module_graph()
    done, cycles = set(), []

    def visit(m, path):
        if m in path:
            cycles.append(path[path.index(m):] + [m])
            return
        if m in done:
            return
        for n in sorted(graph[m]):
            visit(n, path + [m])
        done.add(m)

    for m in sorted(graph):
        visit(m, [])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:5])


def test_the_command_line_talks_only_to_the_api():
    """dlc/cli.py parses (dlc/cli_parser.py), calls dlc/api.py and prints; `dlc lsp` hands over to the server."""
    allowed = {"dlc", "dlc.api", "dlc.cli_parser", "dlc.lsp"}
    imported = {m for m in _module_graph()["dlc.cli"]}
    assert imported <= allowed, f"dlc/cli.py imports {sorted(imported - allowed)}"


def test_no_module_outgrew_its_room():
    """One idea per module, about 400 lines at most (the design card): a module past 420 lines is split
    along its jobs before it grows further."""
    root = ROOT
    long = {str(p.relative_to(root)): n for folder in ("grammar", "compiler", "runtime", "dlc")
            for p in sorted((root / folder).rglob("*.py")) if (n := len(p.read_text().splitlines())) > 420}
    assert not long, f"modules over 420 lines: {long}"
