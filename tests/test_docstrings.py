"""The ``>>>`` examples in goapp's docstrings run and say what they show (doctest).

Every module of goapp is imported and searched, the compiled rules core included (its
docstrings come from goapp/_core.pyx); examples that need a running engine carry
``# doctest: +SKIP``.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

import goapp


def _modules() -> list[str]:
    names = [goapp.__name__]
    for info in pkgutil.walk_packages(goapp.__path__, prefix="goapp."):
        if info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return sorted(names)


def _examples(module: ModuleType) -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [t for t in finder.find(module) if t.examples]


MODULES_WITH_EXAMPLES = [name for name in _modules() if _examples(importlib.import_module(name))]


@pytest.mark.parametrize("name", MODULES_WITH_EXAMPLES)
def test_docstring_examples(name: str) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in _examples(importlib.import_module(name)):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_examples_are_found() -> None:
    # the search must see the modules known to hold examples, the compiled core included
    assert {"goapp._core", "goapp.rules", "goapp.rules.result", "goapp.rating"} <= set(
        MODULES_WITH_EXAMPLES
    )
