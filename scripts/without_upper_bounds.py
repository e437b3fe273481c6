"""Write a requirements file with its upper bounds and pins lifted, for the newest releases.

    python scripts/without_upper_bounds.py requirements.txt > newest.txt

`<` and `<=` bounds go, `==` and `~=` become `>=`; lower bounds, extras, markers,
comments and pip options stay. scripts/test.sh uses it when STACK=newest (the weekly
CI job), so that a new release of Kedro, MLflow, TensorFlow, click... that breaks the
generated project shows at once.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?)(?P<rest>.*)$"
)


def without_upper_bounds(line: str) -> str:
    """One requirement line with upper bounds dropped and pins turned into minimums."""
    text, _, comment = line.partition("#")
    requirement, semicolon, marker = text.partition(";")
    match = REQUIREMENT.match(requirement.strip())
    if not match:  # blank, comment-only or a pip option such as -e / -r
        return line
    clauses = []
    for raw in match["rest"].split(","):
        clause = raw.strip()
        if not clause or clause.startswith("<"):
            continue
        clauses.append(re.sub(r"^(==|~=)", ">=", clause))
    lifted = match["name"] + ",".join(clauses)
    if semicolon:
        lifted += f"; {marker.strip()}"
    return lifted + (f"  # {comment.strip()}" if comment.strip() else "")


def main(path: str) -> None:
    for line in Path(path).read_text().splitlines():
        print(without_upper_bounds(line))  # noqa: T201


if __name__ == "__main__":
    main(*sys.argv[1:])
