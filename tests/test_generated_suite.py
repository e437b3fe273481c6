"""The generated project's own test suite passes: in the default bake, and in one bake
that gives every question a non-default answer (cookiecutter.json / prompts.yml).

Each runs `pytest` inside the project, as its README tells its owner to; a failure
prints that suite's output.
"""

from __future__ import annotations

import shutil
import sys

import pytest
from helpers import DEFAULT_ANSWERS, PROMPTS, bake_ok, run

# One answer per question, none of them the default.
EVERY_OTHER_ANSWER = {
    "project_name": "Leaf Disease-Detector",
    "image_size": "96",
    "example_data": "no",
    "tracking_uri": "http://127.0.0.1:5000",
    "kedro_viz": "yes",
}


def test_every_question_has_a_non_default_answer_here():
    assert set(EVERY_OTHER_ANSWER) == set(PROMPTS)
    assert all(EVERY_OTHER_ANSWER[key] != DEFAULT_ANSWERS[key] for key in PROMPTS)


@pytest.mark.slow
@pytest.mark.parametrize("answers", ["default", "every-other-answer"])
def test_the_generated_projects_own_tests_pass(
    cookies_session, default_project, tmp_path, answers
):
    if answers == "default":  # a copy: the suite writes caches into the project
        project = shutil.copytree(default_project, tmp_path / default_project.name)
    else:
        project = bake_ok(cookies_session, **EVERY_OTHER_ANSWER)
    result = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        timeout=900,
    )
    assert " passed" in result.stdout.splitlines()[-1], result.stdout[-3000:]
