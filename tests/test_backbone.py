"""A project fine-tuning a pretrained backbone, offline: trained, logged and served.

The backbone is a tiny MobileNetV3Small at 32 px whose no-top weights file the test
writes itself; a few images per class and one epoch per phase keep it short.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import BIN, bake_ok, kedro, project_tracking_uri, run
from serving_helpers import start_server, stop_server

pytestmark = pytest.mark.slow

PACKAGE = "fine_tuned"
IMAGES_PER_CLASS = 12
OPTIONS = {"alpha": 0.25, "minimalistic": True}

WRITE_WEIGHTS = """
import sys, keras, numpy as np
backbone = keras.applications.MobileNetV3Small(
    include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.25,
    minimalistic=True,
)
rng = np.random.default_rng(7)
backbone.set_weights([w + rng.normal(0, 0.01, w.shape).astype(w.dtype)
                      for w in backbone.get_weights()])
backbone.save_weights(sys.argv[1])
"""

IN_PROCESS = """
import json, sys, keras, numpy as np
from PIL import Image
from fine_tuned.preprocessing import preprocess
model = keras.models.load_model(sys.argv[1])
batch = np.stack([preprocess(Image.open(f), 32, 3) for f in json.loads(sys.argv[2])])
print(json.dumps(model.predict(batch, verbose=0).tolist()))
"""


def edit_yaml(path: Path, edit) -> None:
    """Change a project's YAML file as a user would in an editor."""
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def fine_tuned_project(cookies_session, tmp_path_factory) -> Path:
    """A project set to fine-tune MobileNetV3Small from a local weights file, run once."""
    project = bake_ok(cookies_session, project_name="Fine Tuned", image_size="32")
    images = project / "data/01_raw/images"
    for folder in images.iterdir():
        for extra in sorted(folder.iterdir())[IMAGES_PER_CLASS:]:
            extra.unlink()
    weights = tmp_path_factory.mktemp("weights") / "mobilenet.weights.h5"
    run([sys.executable, "-c", WRITE_WEIGHTS, str(weights)], cwd=project)

    def fine_tune(parameters: dict) -> None:
        training = parameters["train_classifier"]
        training["network"].update(
            backbone="MobileNetV3Small",
            weights=str(weights),
            backbone_options=OPTIONS,
        )
        training["epochs"] = 1
        training["fine_tuning"].update(epochs=1, unfreeze_layers=10)

    edit_yaml(project / "conf/base/parameters_training.yml", fine_tune)
    kedro("run", cwd=project)
    return project


def test_served_backbone_model_gives_the_in_process_probabilities(
    fine_tuned_project: Path, tmp_path: Path
) -> None:
    """`mlflow models serve` over HTTP answers what the trained Keras model computes."""
    raw = fine_tuned_project / "data/01_raw/images"
    files = sorted(str(p) for p in raw.glob("*/*"))[:: IMAGES_PER_CLASS // 2]
    in_process = run(
        [
            sys.executable,
            "-c",
            IN_PROCESS,
            str(fine_tuned_project / "data/06_models/classifier.keras"),
            json.dumps(files),
        ],
        cwd=fine_tuned_project / "src",
    )
    expected = np.asarray(json.loads(in_process.stdout.strip().splitlines()[-1]))
    classes = json.loads(
        (fine_tuned_project / "data/06_models/class_names.json").read_text()
    )

    # The logged model itself: a barely trained one may not pass the registry's gate.
    client = mlflow.MlflowClient(project_tracking_uri(fine_tuned_project))
    experiment = client.get_experiment_by_name(PACKAGE)
    [model] = client.search_logged_models(experiment_ids=[experiment.experiment_id])
    server = start_server(
        [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{model.model_id}"]
        + ["--env-manager", "local", "--host", "127.0.0.1"],
        cwd=tmp_path,
        log=tmp_path / "server.log",
        MLFLOW_TRACKING_URI=project_tracking_uri(fine_tuned_project),
        PYTHONPATH="",
    )
    try:
        records = [
            {"image": base64.b64encode(Path(f).read_bytes()).decode()} for f in files
        ]
        response = server.post({"dataframe_records": records})
    finally:
        stop_server(server)
    assert response.status_code == 200, response.text[-2000:]
    served = pd.DataFrame(response.json()["predictions"])
    np.testing.assert_allclose(
        served[[f"probability_{c}" for c in classes]].to_numpy(), expected, atol=1e-5
    )


def test_backbone_run_logs_both_phases(fine_tuned_project: Path) -> None:
    """One epoch of the frozen backbone, one of fine-tuning: steps 1 and 2 in MLflow."""
    client = mlflow.MlflowClient(project_tracking_uri(fine_tuned_project))
    experiment = client.get_experiment_by_name(PACKAGE)
    [training_run] = client.search_runs([experiment.experiment_id])
    losses = client.get_metric_history(training_run.info.run_id, "training.loss")
    assert [m.step for m in losses] == [1, 2]
    params = training_run.data.params
    assert params["train_classifier.network.backbone"] == "MobileNetV3Small"
