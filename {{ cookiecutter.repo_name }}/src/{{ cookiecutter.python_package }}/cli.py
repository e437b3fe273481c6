"""Project commands, added to Kedro's: ``kedro serve`` runs the registered model.

Kedro imports this module for every ``kedro`` command of the project, so the heavy
imports (MLflow, the web server) wait until ``serve`` runs.
"""

from __future__ import annotations

import click
from kedro.framework.cli.utils import env_option
from kedro.framework.session import KedroSession
from kedro.framework.startup import ProjectMetadata

from {{ cookiecutter.python_package }}.serving_defaults import (
    DEFAULT_HOST,
    DEFAULT_PORT,
)


@click.group(name="{{ cookiecutter.python_package }}")
def cli() -> None:
    """Commands of this project."""


def registered_model_uri(
    name: str, version: int | None = None, alias: str | None = None
) -> str:
    """``models:/<name>/<version>``: the version or alias asked for, else ``champion``,
    else the latest; it says which. Raises ``click.ClickException`` when there is none.
    """
    from {{ cookiecutter.python_package }}.registration import (  # noqa: PLC0415
        RegistryLookupError,
        served_version,
    )

    try:
        chosen, reason = served_version(name, version, alias)
    except RegistryLookupError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Version {chosen.version} of '{name}' ({reason})")
    return f"models:/{name}/{chosen.version}"


@cli.command()
@click.option(
    "--version",
    "model_version",
    type=click.IntRange(min=1),
    help="Registered version to serve. Default: champion, else the latest.",
)
@click.option("--alias", help="Serve the version that has this alias, e.g. champion.")
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="Address to listen on; 0.0.0.0 opens the server to other machines.",
)
@click.option(
    "--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535)
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Server processes, each with its own copy of the model; up to one per core.",
)
@env_option
@click.pass_obj  # the project's metadata
def serve(
    metadata: ProjectMetadata,
    model_version: int | None,
    alias: str | None,
    host: str,
    port: int,
    workers: int,
    env: str | None,
) -> None:
    """Serve the registered model over HTTP with MLflow's scoring protocol.

    POST {"dataframe_records": [{"image": "<base64 of an image file>"}]} to
    http://HOST:PORT/invocations. Bad requests get a 4xx whose one-line message names
    the field or row at fault. The tracking store is the one of conf/*/mlflow.yml.
    """
    if model_version is not None and alias is not None:
        raise click.UsageError("Choose --version or --alias, not both.")
    import mlflow  # noqa: PLC0415  slow imports, for `serve` only

    from {{ cookiecutter.python_package }}.registration import (  # noqa: PLC0415
        registered_model_name,
    )
    from {{ cookiecutter.python_package }}.serving import (  # noqa: PLC0415
        serve_model,
    )

    # kedro-mlflow's hook points MLflow at the project's tracking store and registry.
    with KedroSession.create(project_path=metadata.project_path, env=env) as session:
        catalog = session.load_context().catalog
    model_name = registered_model_name(catalog)
    model_uri = registered_model_uri(model_name, model_version, alias)
    click.echo(f"Serving {model_uri} of {mlflow.get_tracking_uri()}")
    serve_model(model_uri, host, port, workers)
