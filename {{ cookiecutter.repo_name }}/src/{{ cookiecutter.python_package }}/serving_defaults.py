"""Where ``kedro serve`` and ``python -m {{ cookiecutter.python_package }}.serving`` listen
by default; no imports, so the server can start without Kedro's project machinery."""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5001  # 5000 is `kedro mlflow ui`'s
