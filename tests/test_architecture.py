"""What each part of goapp may import (docs/architecture.md), checked on the source.

Every ``import`` of every module of goapp is read with :mod:`ast` (those under
``if TYPE_CHECKING:`` and inside functions too) and mapped to the part it names: a package
(``goapp.store``) or a top-level module (``goapp.settings``). A part may import itself and
the parts listed in ``MAY_IMPORT``; anything else fails, naming the module and the line.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "goapp"

#: The bottom: modules that import nothing of goapp but what is listed here.
BASE = {"goapp", "_core", "backoff", "private_files", "settings", "tasks"}

#: Part -> the parts it may import (besides itself). Lower layers first.
MAY_IMPORT: dict[str, set[str]] = {
    "goapp": set(),
    "_core": set(),
    "backoff": set(),
    "private_files": set(),
    "settings": set(),
    "tasks": set(),
    "obs": set(),
    "perf": set(),
    "rules": {"goapp", "_core"},
    "protocol": {"_core"},
    "store": {"private_files"},
    "game": {"protocol", "rules", "store", "tasks"},
    "rating": {"game", "rules", "store", "tasks"},
    "match": {"game", "protocol", "store"},
    "engine": BASE | {"obs", "rules", "store", "game"},
    "bus": BASE | {"obs", "protocol", "game"},
    "server": BASE
    | {"obs", "rules", "protocol", "store", "game", "rating", "match", "engine", "bus", "perf"},
    "loadtest": BASE | {"rules", "store", "server"},
    "cli": BASE | {"obs", "perf", "rules", "store", "engine", "server", "loadtest"},
    "__main__": {"cli"},
}

#: Imports that break the layers on purpose, each (module, imported module) listed by name
#: until a named piece of work removes it. None today: the bus -> server imports (hub,
#: protocol) went when the frames moved to goapp.protocol.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "goapp"


def imports(path: Path, text: str | None = None) -> list[tuple[str, int]]:
    """The goapp modules ``path`` (or ``text`` as if it were there) imports, with lines."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    source = path.read_text() if text is None else text
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "goapp":  # from goapp import x: x may be a module or a name
                found += [(f"goapp.{a.name}", node.lineno) for a in node.names]
            else:
                found.append((module, node.lineno))
    return [(m, line) for m, line in found if m == "goapp" or m.startswith("goapp.")]


def violations(extra: dict[Path, str] | None = None) -> list[str]:
    """Every forbidden import of goapp, plus those of ``extra`` (path -> source text)."""
    bad = []
    sources: dict[Path, str | None] = dict.fromkeys(sorted(ROOT.rglob("*.py")))
    sources.update(extra or {})
    for path, text in sources.items():
        source = _module_name(path)
        part = _part(source)
        allowed = MAY_IMPORT[part] | {part}
        for target, line in imports(path, text):
            target_part = _part(target)
            if target_part == "__version__":
                target_part = "goapp"
            if target_part in allowed or (source, target) in KNOWN_EXCEPTIONS:
                continue
            bad.append(f"{path.relative_to(ROOT.parent)}:{line}: {part} imports {target}")
    return bad


def test_every_part_is_listed() -> None:
    parts = {_part(_module_name(p)) for p in ROOT.rglob("*.py")}
    assert parts <= set(MAY_IMPORT), sorted(parts - set(MAY_IMPORT))


def test_no_part_imports_one_it_may_not() -> None:
    assert violations() == []


def test_the_known_exceptions_still_exist() -> None:
    # an exception that is gone must leave the list, so that it cannot come back unseen
    seen = {(_module_name(p), t) for p in ROOT.rglob("*.py") for t, _ in imports(p)}
    assert seen >= KNOWN_EXCEPTIONS, sorted(KNOWN_EXCEPTIONS - seen)


def test_the_check_sees_forbidden_imports() -> None:
    probe = ROOT / "engine" / "probe.py"  # read as text, never written
    text = "from goapp.server.ratelimit import Backoff\n\ndef f():\n    from ..bus import redis\n"
    assert violations({probe: text}) == [
        "goapp/engine/probe.py:1: engine imports goapp.server.ratelimit",
        "goapp/engine/probe.py:4: engine imports goapp.bus",
    ]
