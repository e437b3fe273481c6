"""What a copied project's tracking store points at (the generated README says so).

MLflow records artifact locations as absolute paths in the SQLite store: a copy of a
trained project lists the original's runs and reads the original's files. If MLflow
ever records them relative to the store, this test fails and the README must change.
"""

from __future__ import annotations

import mlflow
import pytest
from helpers import TRAINED_PACKAGE, project_tracking_uri


@pytest.mark.slow
def test_a_copied_projects_store_still_points_at_the_original(
    trained_project, project_copy
):
    client = mlflow.MlflowClient(project_tracking_uri(project_copy))
    experiment = client.get_experiment_by_name(TRAINED_PACKAGE)
    original = (trained_project.path / "mlartifacts").as_uri()
    assert experiment.artifact_location.startswith(original)
    (run, *_) = client.search_runs([experiment.experiment_id])
    assert run.info.artifact_uri.startswith(original)
    assert not run.info.artifact_uri.startswith(project_copy.as_uri())
