"""The layout of ARCHITECTURE.md holds: no upward imports, no private imports, small units."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "kerasdistill"

# The rooms of ARCHITECTURE.md, bottom-up: a module may import its own room and the rooms before it.
ROOMS = [
    {"backend", "batch", "defaults", "ranges", "schedules", "version", "idx", "metrics", "tables", "logs"},
    {"losses"},
    {"adapters", "taps", "augment", "models", "callbacks", "distribute", "files", "data"},
    {"checks"},
    {"distiller", "steps"},
    {"cache", "selection", "tuning", "transfer"},
    {"export"},
    {"config", "runs", "pipeline", "report", "plots", "cli", "__init__", "__main__"},
]
MAX_FUNCTION_LINES = 65
MAX_CLASS_LINES = 300
MAX_DISTILLER_LINES = 260


def room(module):
    top = module.split(".")[0]
    return next(index for index, names in enumerate(ROOMS) if top in names)


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        yield name, ast.parse(path.read_text(encoding="utf-8"))


def package_imports(name, tree):
    """`(imported module, imported names)` for every import of the package, at any depth."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kerasdistill"):
            target = node.module[len("kerasdistill") :].lstrip(".")
            for alias in node.names:
                # `from kerasdistill import losses` imports the module `losses`.
                yield (target or alias.name), alias.name


def code_lines(node):
    """Lines of a function or class without its docstrings (nested ones included)."""
    docstrings = 0
    for sub in ast.walk(node):
        if isinstance(sub, (ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(sub) is not None:
            docstrings += sub.body[0].end_lineno - sub.body[0].lineno + 1
    return node.end_lineno - node.lineno + 1 - docstrings


def test_every_module_has_a_room():
    for name, _ in modules():
        room(name)  # raises StopIteration for a module ARCHITECTURE.md does not place


def test_no_module_imports_upward_or_private_names():
    problems = []
    for name, tree in modules():
        for target, imported in package_imports(name, tree):
            if room(target) > room(name):
                problems.append(f"{name} imports {target}, a room above it")
            if imported.startswith("_") and imported != "__version__":
                problems.append(f"{name} imports the private name {target}.{imported}")
    assert not problems, "\n".join(problems)


def test_functions_and_classes_stay_small():
    too_long = []
    for name, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                limit = MAX_DISTILLER_LINES if node.name == "Distiller" else MAX_CLASS_LINES
            elif isinstance(node, ast.FunctionDef):
                limit = MAX_FUNCTION_LINES
            else:
                continue
            if code_lines(node) > limit:
                too_long.append(f"{name}.{node.name}: {code_lines(node)} lines (limit {limit})")
    assert not too_long, "\n".join(too_long)
