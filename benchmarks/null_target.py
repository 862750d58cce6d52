"""A do-nothing singer-sdk target: the SDK's floor for the benchmark (default settings).

`python benchmarks/null_target.py < input.jsonl` reads Singer messages like any target;
its only sink buffers records (the SDK's `BatchSink.process_record`) and drops each batch.
"""

from __future__ import annotations

from singer_sdk import typing as th
from singer_sdk.sinks import BatchSink
from singer_sdk.target_base import Target


class NullSink(BatchSink):
    """Buffers batches like any `BatchSink` and does nothing with them."""

    def process_batch(self, context: dict) -> None:
        pass


class NullTarget(Target):
    """Every stream goes to `NullSink`; no settings of its own."""

    name = "target-null"
    config_jsonschema = th.PropertiesList().to_dict()
    default_sink_class = NullSink


if __name__ == "__main__":
    NullTarget.cli()
