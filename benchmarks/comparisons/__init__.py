"""One module per comparison of the benchmark table: a new row is one new file here.

Each module defines:

- ``NUMBER``: its row number in the table; ``KEY``: its key in the JSON results;
- ``OPTIONS``: ``{name: harness.Option(help, default, tiny)}``, its own command-line
  options (``--name``), with their default and ``--tiny`` values;
- ``measure(bench: harness.Bench) -> results``: runs the comparison, both sides
  alternately; the results must be JSON;
- ``rows(results, settings) -> list[harness.Row]``: its rows of the table, from the
  results of this or of an earlier run (``--report``);
- optionally ``SETUP = True``: it runs first, always, and generates the project
  (comparison 6: `kedro new` to the first served prediction).
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def load_all() -> list[ModuleType]:
    """Every comparison module of this package, in row order."""
    modules = [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_")
    ]
    return sorted(modules, key=lambda module: module.NUMBER)
