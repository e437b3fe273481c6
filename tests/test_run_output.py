"""What `kedro run` prints is what a user reads: epochs, and where the model went.

Checked on the session's real training run (the `trained_project` fixture).
"""

from __future__ import annotations

import re

import pytest
from helpers import TRAINED_PACKAGE

pytestmark = pytest.mark.slow


def test_the_epochs_and_the_registered_model_show(trained_project):
    output = trained_project.output
    assert re.search(r"^Epoch 1/\d+$", output, re.M), output[-3000:]
    assert [
        line
        for line in output.splitlines()
        if "version" in line and TRAINED_PACKAGE in line
    ], output[-3000:]


@pytest.mark.parametrize(
    "noise",
    [
        "This TensorFlow binary is optimized",  # TF_CPP_MIN_LOG_LEVEL, set by the package
        "register_new_resolver() is deprecated",  # resolvers registered the current way
        "is added to the Pipeline catalog",  # kedro-mlflow packing the model, at WARNING
        "data_catalog.py:",  # the rich handler's source-file column, which narrows lines
    ],
)
def test_noise_the_project_causes_is_gone(trained_project, noise):
    assert noise not in trained_project.output
