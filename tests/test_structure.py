"""The structure the code keeps: one direction of imports between the packages, no cycles, TensorFlow only
where a model is built or trained, and each configuration value checked in one place."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from runner.schema import PROJECT_ROOT

PACKAGES = ("myxtts", "runner", "analysis", "benchmarks")
TENSORFLOW = ("tensorflow", "keras", "myxtts.backend")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import statement of a file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(node.module, id(node) in top)]
            # `from runner import tracking` imports the module runner.tracking
            found += [(f"{node.module}.{alias.name}", id(node) in top) for alias in node.names]
    return found


MODULES = {_module_name(p): p for package in PACKAGES for p in (PROJECT_ROOT / package).rglob("*.py")}


def _project_edges(module_level_only: bool = False) -> dict[str, set[str]]:
    edges = {}
    for name, path in MODULES.items():
        edges[name] = {target for target, top in _imports(path)
                       if target in MODULES and target != name and (top or not module_level_only)}
    return edges


def test_no_import_cycle_between_project_modules():
    edges = _project_edges()
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " → ".join([*trail[trail.index(target):], target]))
            if not state.get(target):
                visit(target, [*trail, target])
        state[node] = 2

    for module in sorted(edges):
        if not state.get(module):
            visit(module, [module])


@pytest.mark.parametrize("path", sorted(p for p in MODULES.values() if "myxtts" in p.parts), ids=str)
def test_myxtts_knows_nothing_of_the_runner_mlflow_or_hydra(path):
    for target, _ in _imports(path):
        assert target.split(".")[0] not in ("runner", "analysis", "mlflow", "hydra", "omegaconf"), (path, target)


def test_only_the_training_entry_point_brings_tensorflow_into_the_runner():
    """The runner calls myxtts.training.run inside a job and imports nothing else that touches TensorFlow;
    analysis imports none at all."""
    allowed = {"myxtts", "myxtts.record", "myxtts.checks", "myxtts.training.settings", "myxtts.data.settings",
               "myxtts.models.settings", "myxtts.training.diagnostics", "myxtts.switches", "myxtts.typed"}
    for name, path in MODULES.items():
        if not name.startswith(("runner", "analysis")):
            continue
        for target, top in _imports(path):
            if target.split(".")[0] in ("tensorflow", "keras") or (target.startswith("myxtts.") and target in MODULES):
                lazy_training = name == "runner.job" and target == "myxtts.training.run" and not top
                assert target in allowed or lazy_training, (name, target)


def test_importing_the_runner_and_analysis_loads_no_tensorflow():
    modules = [name for name in MODULES if name.startswith(("runner", "analysis")) and name != "runner.__main__"]
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


LONGEST_FUNCTION = 60   # lines, decorators excluded; a longer one is split into named steps
SHORT_PACKAGES = ("myxtts/training", "runner", "analysis")


def test_no_function_in_the_training_runner_and_analysis_code_is_longer_than_60_lines():
    long = []
    for package in SHORT_PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > LONGEST_FUNCTION:
                        long.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, "split these into named steps: " + "; ".join(long)


METRIC_NAME = re.compile(r"^(loss|raw|weighted|weight|weighting|guard|grad|update|val|diag|health)/")


def _metric_literals(path: Path) -> list[str]:
    """String constants and f-string heads that spell a per-step metric name (or its prefix)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        head = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            head = node.value
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            head = str(node.values[0].value)
        if head is not None and METRIC_NAME.match(head):
            found.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {head!r}")
    return found


def test_metric_names_are_spelt_only_in_the_record_catalogue():
    """The trainer, the runner and analysis take every metric name from myxtts/record.py."""
    spelt = [hit for package in ("myxtts", "runner", "analysis") for path in sorted((PROJECT_ROOT / package).rglob("*.py"))
             if path != PROJECT_ROOT / "myxtts" / "record.py" for hit in _metric_literals(path)]
    assert not spelt, "use the names in myxtts/record.py: " + "; ".join(spelt)
    assert _metric_literals(PROJECT_ROOT / "myxtts" / "record.py"), "the check must see the catalogue's own names"


TAG_PREFIXED = re.compile(r"^tags?\.`?[A-Za-z_]")   # a runs-table column ("tag.preset") or a search filter


def _is_tags(expr: ast.expr) -> bool:
    return (isinstance(expr, ast.Name) and expr.id == "tags") or (isinstance(expr, ast.Attribute) and expr.attr == "tags")


def _tag_keys(node: ast.AST) -> list[ast.expr]:
    """The expressions that name a tag where one is read or written: tags[...], tags.get(...), set_tag and
    delete_tag, the dict given to set_tags or create_run(tags=...), a dict assigned to `tags`."""
    if isinstance(node, ast.Subscript) and _is_tags(node.value):
        return [node.slice]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr in ("get", "pop") and _is_tags(node.func.value):
            return node.args[:1]
        if node.func.attr in ("set_tag", "delete_tag"):
            return node.args[1:2]
        if node.func.attr in ("set_tags", "create_run"):
            given = [*node.args, *(kw.value for kw in node.keywords if kw.arg == "tags")]
            return [k for d in given if isinstance(d, ast.Dict) for k in d.keys if k is not None]
    if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and any(
            isinstance(t, ast.Name) and t.id == "tags" for t in node.targets):
        return [k for k in node.value.keys if k is not None]
    return []


def _tag_literals(source: str, where: str) -> list[str]:
    from myxtts import record

    found = []
    for node in ast.walk(ast.parse(source)):
        found.extend(f"{where}:{key.lineno} {key.value!r}" for key in _tag_keys(node)
                     if isinstance(key, ast.Constant) and key.value in record.TAGS)
        head = node.value if isinstance(node, ast.Constant) else (
            node.values[0].value if isinstance(node, ast.JoinedStr) and node.values
            and isinstance(node.values[0], ast.Constant) else None)
        if isinstance(head, str) and TAG_PREFIXED.match(head):
            found.append(f"{where}:{node.lineno} {head!r}")
    return sorted(set(found))   # an f-string's head is seen twice (the string and its first part)


def test_tag_names_are_spelt_only_in_the_record_catalogue():
    """The runner writes and analysis reads every tag by its name in myxtts/record.py; the facts of a
    training are one RunFacts record whose fields are those names."""
    from dataclasses import fields

    from myxtts import record

    spelt = [hit for package in PACKAGES for path in sorted((PROJECT_ROOT / package).rglob("*.py"))
             if path != PROJECT_ROOT / "myxtts" / "record.py"
             for hit in _tag_literals(path.read_text(), str(path.relative_to(PROJECT_ROOT)))]
    assert not spelt, "use the tag names in myxtts/record.py: " + "; ".join(spelt)
    assert set(record.FACT_TAGS) <= set(record.TAGS) and len(set(record.TAGS)) == len(record.TAGS)
    assert [f.name for f in fields(record.RunFacts)] == list(record.FACT_TAGS)
    # The check sees what it forbids: a tag written by its literal name, a table column spelt out.
    probe = ('client.set_tag(run, "outcome", "x")\ntags = {"seed": 1}\nframe["tag.preset"]\n'
             'run.data.tags.get("steps_completed")\nf"tags.config_hash = {h}"\nf"tags.`{record.PARENT}`"\n')
    assert len(_tag_literals(probe, "probe")) == 5


# Analysis reads roles, never preset names (DESIGN.md): a preset's name as a string in an analysis module is a rule
# that knows a configuration by name, where the experiment's sweep file (`roles`) or the preset's yaml should say it.
PRESET_NAMES = frozenset(path.stem for path in (PROJECT_ROOT / "conf" / "preset").glob("*.yaml"))
# Modules still being rewritten to read roles: each leaves this list with its rewrite (none left).
PENDING: set[str] = set()


def _preset_literals(source: str, where: str) -> list[str]:
    """Every string constant that is exactly a preset's name (prose that mentions one is not a rule)."""
    return [f"{where}:{node.lineno} {node.value!r}" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in PRESET_NAMES]


def test_analysis_names_no_preset_it_could_read_a_role_for():
    modules = {str(path.relative_to(PROJECT_ROOT)): path for path in sorted((PROJECT_ROOT / "analysis").rglob("*.py"))}
    spelt = [hit for name, path in modules.items() if name not in PENDING
             for hit in _preset_literals(path.read_text(), name)]
    assert not spelt, "read the role (analysis/roles.py) or the preset's description, not its name: " + "; ".join(spelt)
    # An exemption ends with its rewrite: a pending module that no longer names a preset leaves PENDING.
    for name in PENDING:
        assert name in modules and _preset_literals(modules[name].read_text(), name), f"remove {name} from PENDING"
    # The check sees a preset named as a dict key, in a comparison and as a default, and lets prose through.
    probe = ('DESCRIPTIONS = {"enhanced": "control"}\nif preset == "basic":\n    pass\n'
             'def f(control="stable_adaptive"):\n    return f"{control} is not enhanced"\n')
    assert [hit.split()[1] for hit in _preset_literals(probe, "probe")] == ["'enhanced'", "'basic'", "'stable_adaptive'"]
