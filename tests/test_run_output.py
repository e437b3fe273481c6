"""What `kedro run` prints is what a user reads: epochs, and where the model went.

Checked on the session's real training run (the `trained_project` fixture).
"""

from __future__ import annotations

import re

import mlflow
import pytest
from helpers import TRAINED_PACKAGE

pytestmark = pytest.mark.slow


def test_the_epochs_show(trained_project):
    assert re.search(r"^Epoch 1/\d+$", trained_project.output, re.M), (
        trained_project.output[-3000:]
    )


def test_the_last_lines_say_how_good_the_model_is_and_where_it_went(trained_project):
    """The test figures that matter, the registered model's URI, how to serve it."""
    client = mlflow.MlflowClient(trained_project.tracking_uri)
    champion = client.get_model_version_by_alias(TRAINED_PACKAGE, "champion")
    metrics = client.get_run(champion.run_id).data.metrics
    text = " ".join(trained_project.output.split())  # rich wraps lines at 80 columns
    name = TRAINED_PACKAGE
    registered = (
        f"Registered version 1 of '{name}' (models:/{name}/1): "
        f"test accuracy {metrics['test.accuracy']:.4f}, "
        f"balanced accuracy {metrics['test.balanced_accuracy']:.4f}, "
        f"macro-F1 {metrics['test.f1_macro']:.4f}"
    )
    assert registered in text, trained_project.output[-3000:]
    assert (
        f"'champion' now points to version 1 (models:/{name}@champion): "
        "serve it with `kedro serve`"
    ) in text


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
