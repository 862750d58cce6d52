"""One sink kind per module; `SINK_KINDS` says which kind loads which Ortto object."""

from __future__ import annotations

from target_ortto.sinks.activity import ActivitySink
from target_ortto.sinks.base import OrttoSink
from target_ortto.sinks.link import LinkSink, PeopleSink
from target_ortto.sinks.merge import MergeSink
from target_ortto.sinks.subscribe import AudienceSink

SINK_KINDS: dict[str, type[OrttoSink]] = {
    "person": PeopleSink,
    "account": MergeSink,
    "audience": AudienceSink,
    "activity": ActivitySink,
}

__all__ = [
    "SINK_KINDS",
    "ActivitySink",
    "AudienceSink",
    "LinkSink",
    "MergeSink",
    "OrttoSink",
    "PeopleSink",
]
