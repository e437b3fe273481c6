"""What Kedro-Viz shows: every dataset in a data layer, no node named like a dataset."""

from __future__ import annotations

from pathlib import Path

import yaml

from {{ cookiecutter.python_package }}.pipelines import (
    batch_inference,
    data_processing,
    evaluation,
    features,
    inference,
    training,
)

CATALOG = Path(__file__).resolve().parents[1] / "conf" / "base" / "catalog.yml"
LAYERS = (
    "raw",
    "intermediate",
    "primary",
    "feature",
    "model_input",
    "models",
    "model_output",
    "reporting",
)
PIPELINES = (
    batch_inference,
    data_processing,
    evaluation,
    features,
    inference,
    training,
)


def test_every_catalog_entry_has_a_kedro_viz_layer() -> None:
    """Kedro-Viz's layer view needs ``metadata: kedro-viz: layer:`` on each entry."""
    entries = yaml.safe_load(CATALOG.read_text())
    layers = {
        name: (entry.get("metadata") or {}).get("kedro-viz", {}).get("layer")
        for name, entry in entries.items()
    }
    assert {name: layer for name, layer in layers.items() if layer not in LAYERS} == {}


def test_no_node_is_named_like_a_dataset() -> None:
    """Kedro-Viz draws nodes and datasets by name: the same name would be ambiguous."""
    pipelines = [module.create_pipeline() for module in PIPELINES]
    node_names = {node.name for pipeline in pipelines for node in pipeline.nodes}
    datasets = set().union(*(pipeline.datasets() for pipeline in pipelines))
    assert node_names & datasets == set()


def test_layers_follow_the_data_flow() -> None:
    """No node reads a later layer than it writes: Kedro-Viz shows the layers in the
    order of Kedro's data layers (raw, intermediate, ..., feature, model_input, ...)."""
    entries = yaml.safe_load(CATALOG.read_text())
    rank = {
        name: LAYERS.index(entry["metadata"]["kedro-viz"]["layer"])
        for name, entry in entries.items()
    }
    backwards = [
        (source, target)
        for module in PIPELINES
        for node in module.create_pipeline().nodes
        for source in node.inputs
        for target in node.outputs
        if source in rank and target in rank and rank[source] > rank[target]
    ]
    assert backwards == []
