"""The generic sink's pure parts: how a drain's items are cut into requests."""

from __future__ import annotations

import itertools
import json

from target_ortto.sinks.base import MAX_PAYLOAD, chunked


def test_chunks_hold_at_most_size_items():
    assert [len(c) for c in chunked(list(range(250)), 100)] == [100, 100, 50]


def test_chunks_stay_under_the_payload_limit_counting_bytes_not_characters():
    text = "é" * 3000  # 3000 characters, 6000 bytes in UTF-8
    items = [{"n": i, "text": text} for i in range(1000)]

    chunks = chunked(items, 1000, body=lambda item: item)

    def size(chunk: list[dict]) -> int:
        return len(json.dumps(chunk, separators=(",", ":"), ensure_ascii=False).encode())

    assert all(size(c) <= MAX_PAYLOAD for c in chunks)
    assert all(size([*c, nxt[0]]) > MAX_PAYLOAD for c, nxt in itertools.pairwise(chunks))
    assert len(chunks) > 1 and len(chunks[0]) < MAX_PAYLOAD // 3000
    assert [item for c in chunks for item in c] == items


def test_an_item_over_the_limit_travels_alone():
    items = [{"x": "a"}, {"x": "b" * (MAX_PAYLOAD + 1)}, {"x": "c"}]

    assert [len(c) for c in chunked(items, 100, body=lambda item: item)] == [1, 1, 1]
