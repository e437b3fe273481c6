"""Project pipelines."""

from __future__ import annotations

import logging
from typing import Any

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline
from kedro_mlflow.pipeline.pipeline_ml import PipelineML

from {{ cookiecutter.python_package }}.model_logging import (
    log_model_kwargs,
)
from {{ cookiecutter.python_package }}.pipelines.inference.runner import (
    SequentialRunner,
)

logger = logging.getLogger(__name__)

TRAINED_MODEL = "classifier"  # the training output that the logged model carries


class TrainingPipelineML(PipelineML):
    """kedro-mlflow's training pipeline that logs a model only when the run trains it.

    ``kedro run --from-nodes predict_test_images`` or ``--to-nodes split_images`` runs a
    part of it. A part without training becomes a plain pipeline: it would otherwise log
    (and register) whatever model file is on disk, or fail with kedro-mlflow's error.
    """

    def filter(self, *args: Any, **kwargs: Any) -> Pipeline:
        part = self.training.filter(*args, **kwargs)
        if TRAINED_MODEL not in part.all_outputs():
            logger.warning(
                "This run does not train the model (its nodes leave out "
                "train_classifier), so it logs and registers no model; run `kedro run` "
                "to train, log and register one."
            )
            return part
        return TrainingPipelineML(
            nodes=part.nodes,
            inference=self.inference,
            input_name=self.input_name,
            kpm_kwargs=self.kpm_kwargs,
            log_model_kwargs=self.log_model_kwargs,
        )


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines; the default one trains and logs the model."""
    pipelines = find_pipelines(raise_errors=True)
    if "__default__" not in pipelines:
        # `kedro run --pipeline <name>`: Kedro 1.x loads only the pipelines asked for.
        return pipelines
    training = (
        pipelines["data_processing"]
        + pipelines["features"]
        + pipelines["training"]
        + pipelines["evaluation"]
    )
    # The training pipeline is tied to the inference pipeline: when training succeeds,
    # kedro-mlflow logs one MLflow model that runs `inference` with the training outputs
    # it reads (the Keras model and the class names), so serving preprocesses images
    # exactly as training did; the project's hooks then register it if it passes the
    # gate. It must stay the default pipeline itself: adding it to another pipeline
    # makes a plain one that logs nothing.
    pipelines["__default__"] = TrainingPipelineML(
        nodes=training.nodes,
        inference=pipelines["inference"],
        input_name="images_to_score",
        kpm_kwargs={"runner": SequentialRunner()},  # quiet and lean on each request
        log_model_kwargs=log_model_kwargs(),
    )
    return pipelines
