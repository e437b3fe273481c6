"""Which worker of a TF_CONFIG cluster records the run: the chief, as TensorFlow says."""

from __future__ import annotations

import json

import pytest

from {{ cookiecutter.python_package }}.multi_worker import (
    is_chief,
)


def _config(task_type: str, index: int, chief: bool = False) -> str:
    cluster = {"worker": ["127.0.0.1:2001", "127.0.0.1:2002"]}
    if chief:
        cluster["chief"] = ["127.0.0.1:2000"]
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


@pytest.mark.parametrize(
    ("tf_config", "expected"),
    [
        (None, True),
        ("", True),
        (_config("worker", 0), True),
        (_config("worker", 1), False),
        (_config("chief", 0, chief=True), True),
        (_config("worker", 0, chief=True), False),
        (_config("evaluator", 0), False),
    ],
    ids=[
        "no-cluster",
        "empty",
        "worker-0",
        "worker-1",
        "chief",
        "worker-0-beside-a-chief",
        "evaluator",
    ],
)
def test_is_chief(tf_config: str | None, expected: bool) -> None:
    assert is_chief(tf_config) is expected


def test_a_malformed_tf_config_is_named() -> None:
    with pytest.raises(ValueError, match="TF_CONFIG is not a TensorFlow cluster"):
        is_chief('{"cluster": {}}')
