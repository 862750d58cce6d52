"""Items: what one record becomes, folded by key and sent as a body."""

from __future__ import annotations

import pytest

from target_ortto.items import MergeRecord

ANN = {"str::email": "a@x.co"}


def merge_record(fields=None, tags=(), unset_tags=(), location=None):
    return MergeRecord((), dict(fields or {}), list(tags), list(unset_tags), location)


class TestMergeRecord:
    def test_fold_later_values_win_field_by_field(self):
        merged = merge_record({"str::first": "Ann", "str::last": "Lee"})
        merged.fold(merge_record({"str::first": "Anne", "str::name": "Anne Lee"}))
        assert merged.fields == {"str::first": "Anne", "str::last": "Lee", "str::name": "Anne Lee"}

    @pytest.mark.parametrize(
        ("earlier", "later", "tags", "unset_tags"),
        [
            pytest.param((["vip", "beta"], []), ([], ["vip"]), ["beta"], ["vip"], id="unset-wins"),
            pytest.param(([], ["vip"]), (["vip"], []), ["vip"], [], id="tag-cancels-unset"),
            pytest.param((["a", "b"], []), (["b", "c"], []), ["a", "b", "c"], [], id="union"),
        ],
    )
    def test_fold_tags_and_unset_tags_later_wins(self, earlier, later, tags, unset_tags):
        merged = merge_record({}, *earlier)
        merged.fold(merge_record({}, *later))
        assert (merged.tags, merged.unset_tags) == (tags, unset_tags)

    def test_fold_keeps_location_unless_the_later_record_has_one(self):
        merged = merge_record(location={"source_ip": "1.1.1.1"})
        merged.fold(merge_record())
        assert merged.location == {"source_ip": "1.1.1.1"}
        merged.fold(merge_record(location={"source_ip": "2.2.2.2"}))
        assert merged.location == {"source_ip": "2.2.2.2"}

    def test_body_has_only_what_is_set(self):
        assert merge_record(ANN).body() == {"fields": ANN}
        full = merge_record(ANN, ["t"], ["u"], {"source_ip": "1.1.1.1"})
        body = {
            "fields": ANN,
            "tags": ["t"],
            "unset_tags": ["u"],
            "location": {"source_ip": "1.1.1.1"},
        }
        assert full.body() == body
