"""Pipelines of the project, each found by `find_pipelines()`."""
