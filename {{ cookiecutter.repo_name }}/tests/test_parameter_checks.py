"""Every parameter is checked before a run starts, in one line that names it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kedro.io import DataCatalog
from kedro.pipeline import Node, Pipeline
from kedro_mlflow.pipeline.pipeline_ml import PipelineML

from {{ cookiecutter.python_package }}.hooks import (
    ParameterCheckHooks,
)
from {{ cookiecutter.python_package }}.parameter_checks import (
    RULES,
    ParameterError,
    check_parameters,
    parameter_errors,
)

BAD_VALUES = [
    ("train_classifier.epochs", 0, "an integer >= 1"),
    ("train_classifier.epochs", -1, "an integer >= 1"),
    ("train_classifier.epochs", "abc", "an integer >= 1"),
    ("train_classifier.epochs", 2.5, "an integer >= 1"),
    ("train_classifier.epochs", True, "an integer >= 1"),
    ("train_classifier.batch_size", 0, "an integer >= 1"),
    ("train_classifier.learning_rate", 0, "a number > 0"),
    ("train_classifier.learning_rate", "fast", "a number > 0"),
    ("train_classifier.early_stopping.patience", -1, "an integer >= 0"),
    ("train_classifier.network.dropout", 1, "a number in [0, 0.99]"),
    ("train_classifier.augmentation.flip", "sideways", "one of 'none'"),
    ("image.size", 0, "an integer >= 1"),
    ("image.channels", 2, "one of 1, 3"),
    ("predict_test_images.batch_size", 0, "an integer >= 1"),
    ("predict_images.batch_size", 0, "an integer >= 1"),
    ("predict_images.on_invalid_image", "Fail", "one of 'skip', 'fail'"),
    ("preprocess_images.on_invalid_image", "ignore", "one of 'skip', 'fail'"),
    ("split_images.test_fraction", 1, "a number between 0 and 1"),
    ("register_model.minimum", 2, "null or a number in [0, 1]"),
]
# Parameters other pipelines add: a missing one is fine, a present one is checked.
OPTIONAL_VALUES = [
    ("train_classifier.fine_tuning.epochs", -1, "an integer >= 0"),
    ("train_classifier.fine_tuning.unfreeze_layers", 1.5, "an integer >= 0"),
    ("train_classifier.fine_tuning.learning_rate_factor", 0, "a number in (0, 1]"),
    ("train_classifier.fine_tuning.learning_rate_factor", 1.5, "a number in (0, 1]"),
    ("train_classifier.class_weight", "equal", "one of 'balanced', null"),
    ("train_classifier.network.backbone", "", "null or a non-empty string"),
    ("train_classifier.mixed_precision", "yes", "true or false"),
    ("train_classifier.jit_compile", 1, "true or false"),
    ("train_classifier.distribution.strategy", "tpu", "one of 'default'"),
]


def with_value(parameters: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of ``parameters`` with ``value`` at the dotted name."""
    changed = copy.deepcopy(parameters)
    *parents, last = dotted.split(".")
    target = changed
    for key in parents:
        target = target.setdefault(key, {})
    target[last] = value
    return changed


def test_the_project_s_parameters_pass(project_parameters: dict[str, Any]) -> None:
    assert parameter_errors(project_parameters) == []


@pytest.mark.parametrize(
    ("name", "value", "requirement"),
    BAD_VALUES + OPTIONAL_VALUES,
    ids=[f"{n}={v!r}" for n, v, _ in BAD_VALUES + OPTIONAL_VALUES],
)
def test_a_bad_value_is_one_line_naming_the_parameter(
    project_parameters: dict[str, Any], name: str, value: Any, requirement: str
) -> None:
    with pytest.raises(ParameterError) as error:
        check_parameters(with_value(project_parameters, name, value))
    message = str(error.value)
    assert message.startswith(f"{name} must be {requirement}")
    assert message.endswith(f", got {value!r}")
    assert "\n" not in message


def test_the_issue_s_example_line(project_parameters: dict[str, Any]) -> None:
    bad = with_value(project_parameters, "train_classifier.epochs", 0)
    assert parameter_errors(bad) == [
        "train_classifier.epochs must be an integer >= 1, got 0"
    ]


def test_a_missing_optional_parameter_is_fine(
    project_parameters: dict[str, Any],
) -> None:
    parameters = copy.deepcopy(project_parameters)
    parameters["train_classifier"].pop("fine_tuning", None)
    parameters["train_classifier"].pop("class_weight", None)
    assert parameter_errors(parameters) == []


def test_only_the_pipeline_s_parameters_are_checked(
    project_parameters: dict[str, Any],
) -> None:
    """A bad training value does not stop batch inference, which does not use it."""
    bad = with_value(project_parameters, "train_classifier.epochs", 0)
    assert parameter_errors(bad, used={"predict_images"}) == []
    assert len(parameter_errors(bad, used={"train_classifier"})) == 1


def test_every_rule_names_a_known_top_level_parameter(
    project_parameters: dict[str, Any],
) -> None:
    unknown = {name.split(".")[0] for name in RULES} - set(project_parameters)
    assert not unknown


def test_the_hook_checks_what_the_pipeline_reads(
    project_parameters: dict[str, Any],
) -> None:
    """The check reads the run's parameters from the catalog, before any node runs."""
    ran = []
    pipeline = Pipeline(
        [
            Node(
                func=ran.append,
                inputs="params:train_classifier",
                outputs=None,
                name="uses_training_parameters",
            )
        ]
    )
    bad = with_value(project_parameters, "train_classifier.batch_size", 0)
    catalog = DataCatalog()
    catalog["parameters"] = bad
    with pytest.raises(ParameterError, match="train_classifier.batch_size must be"):
        ParameterCheckHooks().before_pipeline_run(pipeline, catalog)
    assert ran == []


def test_the_hook_checks_the_parameters_baked_into_the_logged_model(
    project_parameters: dict[str, Any],
) -> None:
    """The inference pipeline's parameters (request limits) travel with the model: a
    bad one is refused before training, not found out on the first request."""
    training = Pipeline(
        [Node(func=lambda: 1, inputs=None, outputs="classifier", name="train")]
    )
    inference = Pipeline(
        [
            Node(
                func=lambda images, model, limits: images,
                inputs=["images_to_score", "classifier", "params:preprocess_payload"],
                outputs="predictions",
                name="predict",
            )
        ]
    )
    pipeline = PipelineML(
        nodes=training.nodes, inference=inference, input_name="images_to_score"
    )
    catalog = DataCatalog()
    catalog["parameters"] = with_value(
        project_parameters, "preprocess_payload.max_images", 0
    )
    with pytest.raises(ParameterError, match="preprocess_payload.max_images must be"):
        ParameterCheckHooks().before_pipeline_run(pipeline, catalog)
