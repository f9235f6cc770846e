"""The layout of ARCHITECTURE.md holds: no upward imports, no private imports, small units."""

import ast
import pathlib
import re

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "kerasdistill"

ARCHITECTURE = PACKAGE.parent / "ARCHITECTURE.md"


def rooms_of(text):
    """The rooms of ARCHITECTURE.md, bottom-up, as sets of module names: its `## Room — `a.py`, `b/`` headings.

    A module may import its own room and the rooms before it.
    """
    rooms = []
    for line in text.splitlines():
        if line.startswith("## ") and " — " in line:
            names = re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)(?:\.py|/)`", line.split(" — ", 1)[1])
            rooms.append(set(names))
    return rooms


ROOMS = rooms_of(ARCHITECTURE.read_text(encoding="utf-8"))
MAX_FUNCTION_LINES = 60
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


def test_architecture_md_names_each_module_in_one_room():
    assert len(ROOMS) >= 8 and {"backend", "losses", "distiller", "selection", "export", "pipeline", "__init__"} <= set().union(*ROOMS)
    named = [name for names in ROOMS for name in names]
    assert len(named) == len(set(named)), "a module is named in two rooms"
    on_disk = {path.stem if path.suffix else path.name for path in PACKAGE.iterdir() if path.suffix == ".py" or (path / "__init__.py").is_file()}
    assert set(named) == on_disk, f"ARCHITECTURE.md places {sorted(set(named) - on_disk)} (no such module) and misses {sorted(on_disk - set(named))}"


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


# The namedtuple API is public despite its underscore.
PUBLIC_UNDERSCORED = {"_replace", "_asdict", "_fields", "_make"}


def test_no_private_keras_name_outside_the_compatibility_module():
    """Only kerasdistill.compat reaches inside Keras: no `keras.src` import, no `x._name` on another object."""
    problems = []
    for name, tree in modules():
        if name == "compat":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras.src"):
                problems.append(f"{name}:{node.lineno} imports {node.module}")
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")) and node.attr not in PUBLIC_UNDERSCORED:
                    problems.append(f"{name}:{node.lineno} reads {ast.unparse(node)}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "setattr", "hasattr"):
                owner, literal = (node.args + [None, None])[:2]
                mine = isinstance(owner, ast.Name) and owner.id in ("self", "cls")
                text = str(literal.value) if isinstance(literal, ast.Constant) else ""
                if not mine and text.startswith("_") and not text.startswith("__"):
                    problems.append(f"{name}:{node.lineno} {ast.unparse(node)}")
    assert not problems, "\n".join(problems)


def module_imports(name, tree):
    """The package modules `name` imports, at any depth (a function's own imports too)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kerasdistill"):
            base = node.module[len("kerasdistill") :].lstrip(".")
            for alias in node.names:
                candidate = as_module(f"{base}.{alias.name}" if base else alias.name)
                found.add(candidate or as_module(base))
    return {target for target in found if target and target != name}


def as_module(dotted):
    """The module a dotted name imports: itself, or its package's `__init__`; None for the top package."""
    if dotted in MODULE_NAMES:
        return dotted
    package = f"{dotted}.__init__" if dotted else None
    return package if package in MODULE_NAMES else None


MODULE_NAMES = {name for name, _ in modules()}


def test_no_import_circle():
    graph = {name: module_imports(name, tree) for name, tree in modules()}
    # A package's __init__ gathers its modules; a module importing its own package means its __init__.
    circles = []

    def visit(node, path):
        for target in graph.get(node, ()):
            if target in path:
                circles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in done:
                visit(target, [*path, target])
        done.add(node)

    done = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert not circles, "\n".join(sorted(set(circles)))
