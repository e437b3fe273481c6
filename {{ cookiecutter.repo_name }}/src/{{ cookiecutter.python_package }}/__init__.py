"""{{ cookiecutter.project_name }}: a Kedro project that trains and serves an image classifier."""

__version__ = "0.1"
