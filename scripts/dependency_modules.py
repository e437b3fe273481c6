"""List the top-level modules that a generated project's environment can import.

A generated package named like one of them would shadow it (``Packaging``,
``Typing Extensions``, ``Attr``...), so the pre-generation hook refuses those names.
The hook keeps the list itself (it may import only what cookiecutter has); this
script writes it there from a real environment where the project's requirements are
installed, and ``tests/test_hooks.py`` checks it against the installed one.

    python scripts/dependency_modules.py          # rewrite the list in the hook
    python scripts/dependency_modules.py --check  # exit 1 if a module is missing
"""

from __future__ import annotations

import re
import sys
import textwrap
from importlib.metadata import (
    PackageNotFoundError,
    distribution,
    packages_distributions,
)
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "{{ cookiecutter.repo_name }}" / "requirements.txt"
HOOK = ROOT / "hooks" / "pre_gen_project.py"
BLOCK = re.compile(
    r"# BEGIN dependency modules\n.*?# END dependency modules\n", re.DOTALL
)
NAMES = re.compile(r'"""(.*?)"""', re.DOTALL)


def project_requirements() -> list[Requirement]:
    """Every requirement line of the template's requirements.txt, any option included."""
    lines = REQUIREMENTS.read_text().splitlines()
    return [
        Requirement(line.strip())
        for line in lines
        if line.strip() and not line.lstrip().startswith(("#", "{%"))
    ]


def installed_closure(requirements: list[Requirement]) -> set[str]:
    """The installed distributions these requirements pull in, recursively."""
    seen: set[str] = set()
    pending = [(r, frozenset(r.extras)) for r in requirements]
    while pending:
        requirement, extras = pending.pop()
        name = canonicalize_name(requirement.name)
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue  # a platform's or an option's dependency not installed here
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in seen:
            continue
        seen.add(key)
        for line in dist.requires or []:
            child = Requirement(line)
            wanted = child.marker is None or any(
                child.marker.evaluate({"extra": extra}) for extra in {"", *extras}
            )
            if wanted:
                pending.append((child, frozenset(child.extras)))
    return {key.split("[")[0] for key in seen}


def importable_modules() -> set[str]:
    """Lower-case top-level modules of the project's installed dependencies."""
    wanted = installed_closure(project_requirements())
    return {
        module.lower()
        for module, dists in packages_distributions().items()
        if module.isidentifier()
        and not module.startswith("_")
        and any(canonicalize_name(d) in wanted for d in dists)
    }


def hook_modules() -> set[str]:
    """The modules the hook's list holds now."""
    return set(NAMES.search(BLOCK.search(HOOK.read_text()).group()).group(1).split())


def write_hook(modules: set[str]) -> None:
    """Replace the hook's list, keeping the names it already has."""
    names = textwrap.fill(" ".join(sorted(modules | hook_modules())), 88)
    block = (
        "# BEGIN dependency modules\n"
        f'DEPENDENCY_MODULES = frozenset(\n    """\n{names}\n""".split()\n)\n'
        "# END dependency modules\n"
    )
    HOOK.write_text(BLOCK.sub(lambda _: block, HOOK.read_text()))


def main(args: list[str]) -> int:
    modules = importable_modules()
    if "--check" in args:
        missing = sorted(modules - hook_modules())
        if missing:
            print(f"missing from {HOOK.name}: {' '.join(missing)}")  # noqa: T201
        return 1 if missing else 0
    write_hook(modules)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
