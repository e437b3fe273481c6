"""Every parameter checked before a run does any work, with one line naming it.

Each rule is one line of ``RULES``: the parameter's dotted name and what it must be.
A parameter missing from the configuration is not checked (it may be optional); a
run checks only the parameters of the pipeline it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click

from {{ cookiecutter.python_package }} import (
    image_folders,
)

# A rule returns None when the value is fine, else what the value must be.
Rule = Callable[[Any], str | None]
MISSING = object()


class ParameterError(click.ClickException, ValueError):
    """A parameter value that the project cannot run with; the message names it.

    A ``ClickException``: the ``kedro`` command prints its one line, no traceback.
    """


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def integer(minimum: int) -> Rule:
    """A whole number of at least ``minimum``."""
    requirement = f"an integer >= {minimum}"
    return lambda value: (
        None if _is_integer(value) and value >= minimum else requirement
    )


def number(low: float, high: float | None = None, *, low_open: bool = False) -> Rule:
    """A number in [low, high], or (low, high] when ``low_open``."""
    low_text = f"({low}" if low_open else f"[{low}"
    if high is None:
        requirement = f"a number {'>' if low_open else '>='} {low}"
    else:
        requirement = f"a number in {low_text}, {high}]"

    def check(value: Any) -> str | None:
        if not _is_number(value):
            return requirement
        above = value > low if low_open else value >= low
        below = high is None or value <= high
        return None if above and below else requirement

    return check


def fraction() -> Rule:
    """A number strictly between 0 and 1."""
    requirement = "a number between 0 and 1 (both excluded)"
    return lambda value: None if _is_number(value) and 0 < value < 1 else requirement


def one_of(*choices: Any) -> Rule:
    """One of ``choices`` (None appears as null)."""
    shown = ", ".join("null" if c is None else repr(c) for c in choices)
    return lambda value: None if value in choices else f"one of {shown}"


def boolean() -> Rule:
    """true or false."""
    return lambda value: None if isinstance(value, bool) else "true or false"


def text() -> Rule:
    """A non-empty string."""
    return lambda value: (
        None if isinstance(value, str) and value.strip() else "a non-empty string"
    )


def integers(minimum: int) -> Rule:
    """A list of whole numbers, each at least ``minimum``."""
    requirement = f"a list of integers >= {minimum}"
    return lambda value: (
        None
        if isinstance(value, list | tuple)
        and all(_is_integer(v) and v >= minimum for v in value)
        else requirement
    )


def mapping() -> Rule:
    """A mapping of names to values, e.g. {alpha: 0.75}."""
    return lambda value: None if isinstance(value, Mapping) else "a mapping"


def or_null(rule: Rule) -> Rule:
    """null, or a value that ``rule`` accepts."""

    def check(value: Any) -> str | None:
        requirement = None if value is None else rule(value)
        return None if requirement is None else f"null or {requirement}"

    return check


ON_INVALID_IMAGE = one_of(*image_folders.ON_INVALID_IMAGE)

RULES: dict[str, Rule] = {
    "image.size": integer(1),
    "image.channels": one_of(1, 3),
    "image.max_pixels": integer(1),
    "image.max_file_bytes": integer(1),
    "preprocess_images.on_invalid_image": ON_INVALID_IMAGE,
    "split_images.validation_fraction": fraction(),
    "split_images.test_fraction": fraction(),
    "split_images.seed": integer(0),
    "train_classifier.seed": integer(0),
    "train_classifier.batch_size": integer(1),
    "train_classifier.epochs": integer(1),
    "train_classifier.optimizer": text(),
    "train_classifier.learning_rate": number(0, low_open=True),
    "train_classifier.early_stopping.monitor": text(),
    "train_classifier.early_stopping.patience": integer(0),
    "train_classifier.augmentation.flip": one_of(
        "none", "horizontal", "vertical", "horizontal_and_vertical"
    ),
    "train_classifier.augmentation.rotation": number(0, 1),
    "train_classifier.augmentation.zoom": number(0, 1),
    "train_classifier.distribution.strategy": one_of(
        "default", "mirrored", "multi_worker_mirrored"
    ),
    "train_classifier.network.backbone": or_null(text()),
    "train_classifier.network.weights": or_null(text()),
    "train_classifier.network.backbone_options": or_null(mapping()),
    "train_classifier.network.conv_filters": integers(1),
    "train_classifier.network.dense_units": integer(1),
    "train_classifier.network.dropout": number(0, 0.99),
    "train_classifier.fine_tuning.epochs": integer(0),
    "train_classifier.fine_tuning.unfreeze_layers": integer(0),
    "train_classifier.fine_tuning.learning_rate_factor": number(0, 1, low_open=True),
    "train_classifier.class_weight": one_of("balanced", None),
    "train_classifier.mixed_precision": boolean(),
    "train_classifier.jit_compile": boolean(),
    "predict_test_images.batch_size": integer(1),
    "compute_test_metrics.top_k": integer(1),
    "plot_top_losses.count": integer(1),
    "plot_top_losses.columns": integer(1),
    "preprocess_payload.max_images": integer(1),
    "preprocess_payload.max_image_bytes": integer(1),
    "preprocess_payload.max_request_pixels": integer(1),
    "predict_images.batch_size": integer(1),
    "predict_images.on_invalid_image": ON_INVALID_IMAGE,
    "register_model.metric": text(),
    "register_model.minimum": or_null(number(0, 1)),
}


def _lookup(parameters: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted name, or MISSING."""
    value: Any = parameters
    for key in dotted.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return MISSING
        value = value[key]
    return value


def parameter_errors(
    parameters: Mapping[str, Any], used: Iterable[str] | None = None
) -> list[str]:
    """One line per bad parameter; ``used`` limits the check to those top-level keys."""
    wanted = None if used is None else set(used)
    errors = []
    for dotted, rule in RULES.items():
        if wanted is not None and dotted.split(".")[0] not in wanted:
            continue
        value = _lookup(parameters, dotted)
        if value is MISSING:
            continue
        requirement = rule(value)
        if requirement is not None:
            errors.append(f"{dotted} must be {requirement}, got {value!r}")
    return errors


def check_parameters(
    parameters: Mapping[str, Any], used: Iterable[str] | None = None
) -> None:
    """Raise ``ParameterError`` with the first bad parameter's line."""
    errors = parameter_errors(parameters, used)
    if errors:
        raise ParameterError(errors[0])
