"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline
from kedro_mlflow.pipeline import pipeline_ml_factory

from {{ cookiecutter.python_package }}.model_logging import (
    log_model_kwargs,
)
from {{ cookiecutter.python_package }}.pipelines.inference.runner import (
    SequentialRunner,
)

REGISTERED_MODEL_NAME = "{{ cookiecutter.python_package }}"


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines; the default one trains and logs the model."""
    pipelines = find_pipelines(raise_errors=True)
    if "__default__" not in pipelines:
        # `kedro run --pipeline <name>`: Kedro 1.x loads only the pipelines asked for.
        return pipelines
    training = (
        pipelines["data_processing"] + pipelines["training"] + pipelines["evaluation"]
    )
    # pipeline_ml_factory ties the inference pipeline to the training run: when
    # training succeeds, kedro-mlflow logs one MLflow model that runs `inference`
    # with the training outputs it reads (the Keras model and the class names), so
    # serving preprocesses images exactly as training did. It must stay the default
    # pipeline itself: adding it to another pipeline makes a plain one that logs nothing.
    pipelines["__default__"] = pipeline_ml_factory(
        training=training,
        inference=pipelines["inference"],
        input_name="images_to_score",
        kpm_kwargs={"runner": SequentialRunner()},  # quiet and lean on each request
        log_model_kwargs=log_model_kwargs(REGISTERED_MODEL_NAME),
    )
    return pipelines
