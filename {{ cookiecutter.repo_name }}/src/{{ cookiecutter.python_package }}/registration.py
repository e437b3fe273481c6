"""Which logged models enter the registry, which one is champion, which one serves.

A version is registered only after a run that trained its model, and only if the
model passes the gate of ``register_model`` (parameters_registration.yml). The alias
``champion`` moves to it only when it is at least as good as the current champion
on the same test images. Serving and batch inference take ``champion``, else the
latest version, through ``served_version``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import mlflow
from kedro.io import AbstractDataset, DataCatalog, DatasetError
from mlflow import MlflowClient
from mlflow.entities import LoggedModel, Metric, Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

logger = logging.getLogger(__name__)

CHAMPION = "champion"
REGISTERED_MODEL_ENTRY = "registered_model"  # the catalog entry that names the model
SMALL_CNN = "small_cnn"  # the backbone tag of the project's own network


# The test metrics a run's last lines report, and how they read there.
REPORTED_METRICS = {
    "test.accuracy": "accuracy",
    "test.balanced_accuracy": "balanced accuracy",
    "test.f1_macro": "macro-F1",
}


class RegistryLookupError(LookupError):
    """No registered version matches what was asked; the message says what to do."""


class MissingLoggedModelError(LookupError):
    """The run trained a model but MLflow holds no logged model of it."""


@dataclass(frozen=True)
class TrainedModel:
    """What a training run knows about the model it logged."""

    run_id: str
    model_id: str
    class_names: list[str]
    image: dict[str, int]
    backbone: str | None
    data_digest: str | None
    test_digest: str | None


def registered_model_name(catalog: DataCatalog) -> str:
    """The registry name: the ``registered_model`` catalog entry's, defined only there."""
    return catalog.get(REGISTERED_MODEL_ENTRY).model_name


def chance_minimum(class_count: int) -> float:
    """A quarter of the way from chance (1/k) to perfect: clearly above guessing."""
    chance = 1 / class_count
    return chance + (1 - chance) / 4


def gate_refusal(
    metrics: dict[str, float], class_count: int, params: dict[str, Any]
) -> str | None:
    """Why the model must not be registered, or None when it passes the gate."""
    metric = params["metric"]
    minimum = params["minimum"]
    if minimum is None:
        minimum = chance_minimum(class_count)
    if metric not in metrics:
        return (
            f"the run has no metric '{metric}' (register_model.metric); "
            f"it has {', '.join(sorted(metrics)) or 'none'}"
        )
    if metrics[metric] < minimum:
        return (
            f"{metric} {metrics[metric]:.4f} is below the minimum {minimum:.4f} "
            "(register_model.minimum; null means a quarter of the way from chance "
            f"to perfect for {class_count} classes)"
        )
    return None


def description(name: str, model: TrainedModel) -> str:
    """What the model classifies and how to call it, for the registry's pages."""
    size, channels = model.image["size"], model.image["channels"]
    colour = "RGB" if channels == 3 else "grayscale"  # noqa: PLR2004
    classes = ", ".join(model.class_names)
    return (
        f"Classifies an image into one of {len(model.class_names)} classes: "
        f"{classes}. Images are resized to {size}x{size} {colour} pixels "
        f"(network: {model.backbone or SMALL_CNN}).\n\n"
        "Input: a table with one column `image` holding each image file's bytes "
        '(PNG, JPEG, BMP, GIF, WebP). Over HTTP: POST {"dataframe_records": '
        '[{"image": "<base64 of the file>"}]} to /invocations of `kedro serve` or '
        f"`mlflow models serve -m models:/{name}@{CHAMPION}`. In Python: "
        f"`mlflow.pyfunc.load_model('models:/{name}@{CHAMPION}')"
        ".predict(pd.DataFrame({'image': [file_bytes]}))`.\n\n"
        "Output: one row per image: `label`, `confidence` (0-1) and "
        "`probability_<class>` for each class."
    )


def version_tags(model: TrainedModel) -> dict[str, str]:
    """Tags that say what a version was trained on and for."""
    tags = {
        "classes": ",".join(model.class_names),
        "backbone": model.backbone or SMALL_CNN,
        "image_size": str(model.image["size"]),
    }
    if model.data_digest:
        tags["data_digest"] = model.data_digest
    if model.test_digest:
        tags["test_digest"] = model.test_digest
    return tags


def find_logged_model(client: MlflowClient, run: Run, name: str) -> LoggedModel:
    """The latest model named ``name`` that ``run`` logged; raises if there is none."""
    logged = [
        model
        for model in client.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run.info.run_id}'",
        )
        if model.name == name
    ]
    if not logged:
        raise MissingLoggedModelError(
            f"Run {run.info.run_id} trained the model but logged no model named "
            f"'{name}' in {mlflow.get_tracking_uri()}: nothing is registered "
            "(kedro-mlflow's messages above say why)"
        )
    return max(logged, key=lambda model: model.creation_timestamp)


def metrics_summary(metrics: dict[str, float]) -> str:
    """The test metrics that say how good the model is, in one phrase."""
    figures = [
        f"{label} {metrics[key]:.4f}"
        for key, label in REPORTED_METRICS.items()
        if key in metrics
    ]
    return f"test {', '.join(figures)}" if figures else "no test metrics"


def link_metrics_to_model(
    client: MlflowClient, model: TrainedModel, metrics: dict[str, float]
) -> None:
    """Attach ``metrics`` to the logged model, which MLflow's model page shows."""
    linked = {m.key for m in client.get_logged_model(model.model_id).metrics or []}
    client.log_batch(
        model.run_id,
        metrics=[
            Metric(
                key, float(value), 0, 0, run_id=model.run_id, model_id=model.model_id
            )
            for key, value in metrics.items()
            if key not in linked
        ],
    )


def register(
    client: MlflowClient,
    name: str,
    model: TrainedModel,
    metrics: dict[str, float],
    params: dict[str, Any],
) -> ModelVersion | None:
    """Register the model if it passes the gate, then move ``champion`` if it earns it."""
    refusal = gate_refusal(metrics, len(model.class_names), params)
    if refusal:
        logger.warning(
            "The model is logged (models:/%s; %s) but not registered as '%s': %s",
            model.model_id,
            metrics_summary(metrics),
            name,
            refusal,
        )
        return None
    text = description(name, model)
    try:
        client.create_registered_model(name, description=text)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        client.update_registered_model(name, description=text)
    version = client.create_model_version(
        name,
        source=f"models:/{model.model_id}",
        run_id=model.run_id,
        tags=version_tags(model),
        description=text,
        model_id=model.model_id,
    )
    logger.info(
        "Registered version %s of '%s' (models:/%s/%s): %s",
        version.version,
        name,
        name,
        version.version,
        metrics_summary(metrics),
    )
    move_champion(client, name, version, metrics[params["metric"]], params["metric"])
    return version


def _champion(client: MlflowClient, name: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def champion_refusal(
    champion: ModelVersion,
    new: ModelVersion,
    champion_value: float | None,
    new_value: float,
    metric: str,
) -> str | None:
    """Why ``new`` must not replace ``champion``, or None when it may."""
    if champion.tags.get("classes") != new.tags.get("classes"):
        return None  # another set of classes: the old champion cannot do this job
    if champion.tags.get("test_digest") != new.tags.get("test_digest"):
        return (
            f"version {champion.version} was tested on other images (test split "
            f"{champion.tags.get('test_digest')} against {new.tags.get('test_digest')}),"
            f" so their {metric} cannot be compared"
        )
    if champion_value is not None and new_value < champion_value:
        return (
            f"its {metric} {new_value:.4f} is below version {champion.version}'s "
            f"{champion_value:.4f}"
        )
    return None


def move_champion(
    client: MlflowClient, name: str, new: ModelVersion, new_value: float, metric: str
) -> None:
    """Point ``champion`` at ``new`` unless the current champion is better."""
    champion = _champion(client, name)
    if champion is not None:
        champion_value = client.get_run(champion.run_id).data.metrics.get(metric)
        refusal = champion_refusal(champion, new, champion_value, new_value, metric)
        if refusal:
            logger.warning(
                "'%s' stays on version %s: %s. To serve version %s anyway: "
                "kedro serve --version %s",
                CHAMPION,
                champion.version,
                refusal,
                new.version,
                new.version,
            )
            return
    client.set_registered_model_alias(name, CHAMPION, new.version)
    logger.info(
        "'%s' now points to version %s (models:/%s@%s): serve it with `kedro serve`",
        CHAMPION,
        new.version,
        name,
        CHAMPION,
    )


def served_version(
    name: str, version: int | None = None, alias: str | None = None
) -> tuple[ModelVersion, str]:
    """The version to serve and why: the one asked for, else champion, else the latest.

    Raises ``RegistryLookupError`` naming the store when there is no such version.
    """
    client = MlflowClient()
    store = mlflow.get_registry_uri()
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias), f"alias '{alias}'"
        if version is not None:
            return client.get_model_version(name, str(version)), "asked for"
        champion = _champion(client, name)
        if champion is not None:
            return champion, f"alias '{CHAMPION}'"
        ready = [
            v
            for v in client.search_model_versions(f"name='{name}'")
            if v.status == "READY"
        ]
    except MlflowException as error:
        wanted = (
            f"the alias '{alias}'"
            if alias is not None
            else f"version {version}"
            if version is not None
            else "its versions"
        )
        raise RegistryLookupError(
            f"Cannot find {wanted} of the model '{name}' in {store}: {error.message}"
        ) from error
    if not ready:
        raise RegistryLookupError(
            f"No ready version of the model '{name}' is registered in {store}: "
            "train one with `kedro run` first"
        )
    latest = max(ready, key=lambda v: int(v.version))
    return latest, f"the latest, as no version has the alias '{CHAMPION}'"


class RegisteredModelDataset(AbstractDataset[Any, Any]):
    """A registered model, loaded with MLflow's pyfunc flavour: the version or alias
    asked for, else ``champion``, else the latest version. It says which it loads.

    kedro-mlflow's MlflowModelRegistryDataset takes one fixed version or alias, with
    no fallback from ``champion`` to the latest version.
    """

    def __init__(
        self,
        *,
        model_name: str,
        version: int | None = None,
        alias: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.model_name = model_name
        self.version = version
        self.alias = alias
        self.metadata = metadata

    def load(self) -> Any:
        chosen, reason = served_version(self.model_name, self.version, self.alias)
        logger.info(
            "Using version %s of the model '%s' (%s)",
            chosen.version,
            self.model_name,
            reason,
        )
        return mlflow.pyfunc.load_model(f"models:/{self.model_name}/{chosen.version}")

    def save(self, data: Any) -> None:
        raise DatasetError(
            f"'{self.model_name}' is read-only here: `kedro run` registers its versions"
        )

    def _describe(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "version": self.version,
            "alias": self.alias,
        }
