"""The singer-sdk standard target tests, run against the sandbox, checking what landed.

The SDK's test streams have no emails, so each is configured as a person stream whose
`id` is the external ID (`str::ei`). Left out, on purpose:
- multiple_state_messages: expects a STATE relayed after every checkpoint; the SDK emits
  STATE only after a full drain (end of input or every 5 minutes), which is what keeps
  STATE from getting ahead of Ortto.
- record_missing_required_property: the record fails schema validation, which under the
  default `on_invalid_record: fail` correctly stops the run (tests/test_target.py).
- schema_no_properties: a stream of one property-less object cannot become a person;
  the target refuses it at SCHEMA with a clear message (tests/test_target.py).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import API_KEY
from singer_sdk.testing import get_target_test_class
from singer_sdk.testing.suites import SingerTestSuite
from singer_sdk.testing.target_tests import (
    TargetArrayData,
    TargetCamelcaseComplexSchema,
    TargetCamelcaseTest,
    TargetCliPrintsTest,
    TargetDuplicateRecords,
    TargetEncodedStringData,
    TargetInvalidSchemaTest,
    TargetNoPrimaryKeys,
    TargetOptionalAttributes,
    TargetPrimaryKeyUpdates,
    TargetRecordBeforeSchemaTest,
    TargetRecordMissingKeyProperty,
    TargetRecordMissingOptionalFields,
    TargetSchemaUpdates,
    TargetSpecialCharsInAttributes,
)
from singer_sdk.testing.templates import TargetFileTestTemplate

from target_ortto.errors import InvalidRecordError
from target_ortto.sandbox import Sandbox
from target_ortto.target import TargetOrtto

SANDBOX = Sandbox(api_key=API_KEY).start()
BY_ID = {"object": "person", "field_map": {"id": "str::ei"}}
STREAMS = {
    name: BY_ID
    for name in (
        "test_array_data",
        "test_duplicate_records",
        "test_strings",
        "test_strings_in_objects",
        "test_strings_in_arrays",
        "test_no_pk",
        "test_optional_attributes",
        "test_record_before_schema",
        "test_record_missing_key_property",
        "record_missing_fields",
        "test_schema_updates",
        "test_invalid_schema",
    )
}
STREAMS |= {
    "TestCamelcase": {"object": "person", "field_map": {"Id": "str::ei"}},
    "ForecastingTypeToCategory": {"object": "person", "field_map": {"Id": "str::ei"}},
    "example_stream": {"object": "person", "field_map": {"id": "int:cm:id"}},
    "test:SpecialChars!in?attributes": {"object": "person", "field_map": {"_id": "str::ei"}},
}
CONFIG = {
    "api_key": API_KEY,
    "api_url": SANDBOX.url,
    "create_custom_fields": True,
    "flattening_enabled": True,
    "flattening_max_depth": 2,
    # The standard tests reuse stream names across tests; the ledger would skip repeats.
    "skip_unchanged": False,
    "ledger_path": str(Path(tempfile.mkdtemp(prefix="target-ortto-sdk-")) / "ledger.sqlite"),
    "streams": STREAMS,
}


def people(sandbox: Sandbox) -> dict[str, dict]:
    """Landed people by external ID (or email), as field dicts."""
    return {
        p.fields.get("str::ei") or p.fields["str::email"]: p.fields
        for p in sandbox.store.people.values()
    }


class ResetSandbox:
    """Each standard test starts from an empty sandbox."""

    def setup(self) -> None:
        self.resource.reset()


class ArrayData(ResetSandbox, TargetArrayData):
    def validate(self) -> None:
        # With flattening on, the SDK hands arrays over as JSON text.
        fruits = json.loads(people(self.resource)["4"]["str:cm:fruits"])
        assert fruits == ["orange", "banana", "apple", "pear"]


class Camelcase(ResetSandbox, TargetCamelcaseTest):
    def validate(self) -> None:
        assert people(self.resource)["2"]["str:cm:client-name"] == "Gitter iOS App"


class CamelcaseComplexSchema(ResetSandbox, TargetCamelcaseComplexSchema):
    """Schemas only: the custom fields are created, typed from `anyOf` date-times."""

    def validate(self) -> None:
        fields = {f.id: f.display_type for f in self.resource.store.custom_fields("person")}
        assert fields["tme:cm:created-date"] == "time"
        assert fields["bol:cm:is-deleted"] == "bool"


class DuplicateRecords(ResetSandbox, TargetDuplicateRecords):
    def validate(self) -> None:
        landed = people(self.resource)
        assert {k: v["int:cm:metric"] for k, v in landed.items()} == {"1": 100, "2": 20}


class EncodedStringData(ResetSandbox, TargetEncodedStringData):
    def validate(self) -> None:
        infos = {v.get("str:cm:info") for v in people(self.resource).values()}
        assert {"απλή συμβολοσειρά", "简单的字串", 'quoted "string"'} <= infos


class NoPrimaryKeys(ResetSandbox, TargetNoPrimaryKeys):
    def validate(self) -> None:
        assert {k: v["int:cm:metric"] for k, v in people(self.resource).items()} == {
            "1": 11,
            "2": 22,
            "3": 33,
        }


class OptionalAttributes(ResetSandbox, TargetOptionalAttributes):
    def validate(self) -> None:
        landed = people(self.resource)
        assert landed["1"]["str:cm:optional"] == "This is optional"
        assert "str:cm:optional" not in landed["2"]


class RecordMissingOptionalFields(ResetSandbox, TargetRecordMissingOptionalFields):
    def validate(self) -> None:
        assert set(people(self.resource)) == {"1", "2"}


class SchemaUpdates(ResetSandbox, TargetSchemaUpdates):
    def validate(self) -> None:
        landed = people(self.resource)
        assert landed["2"]["bol:cm:a3"] is True
        assert landed["1"]["int:cm:a1"] == 101000


class PrimaryKeyUpdates(ResetSandbox, TargetPrimaryKeyUpdates):
    def validate(self) -> None:
        assert set(people(self.resource)) == {"alice@example.com", "bob@example.com"}


class SpecialCharsInAttributes(ResetSandbox, TargetSpecialCharsInAttributes):
    def validate(self) -> None:
        landed = people(self.resource)["a2e98886"]
        assert landed["str:cm:d-agent-os-version"] == "10.13.1"


class CliPrints(ResetSandbox, TargetCliPrintsTest):
    pass


class InvalidSchema(ResetSandbox, TargetInvalidSchemaTest):
    pass


class RecordBeforeSchema(ResetSandbox, TargetRecordBeforeSchemaTest):
    pass


class RecordMissingKeyProperty(ResetSandbox, TargetRecordMissingKeyProperty):
    def test(self) -> None:
        """The run stops with our error (naming stream, record and line) rather than the
        SDK's, as a record without its key is an invalid record: under
        `on_invalid_record: reject` it is set aside (tests/test_hostile_messages.py)."""
        with pytest.raises(InvalidRecordError, match="no key property 'id'"):
            TargetFileTestTemplate.test(self)


StandardTests = get_target_test_class(
    target_class=TargetOrtto,
    config=CONFIG,
    include_target_tests=False,
    custom_suites=[
        SingerTestSuite(
            kind="target",
            tests=[
                ArrayData,
                Camelcase,
                CamelcaseComplexSchema,
                CliPrints,
                DuplicateRecords,
                EncodedStringData,
                InvalidSchema,
                NoPrimaryKeys,
                OptionalAttributes,
                PrimaryKeyUpdates,
                RecordBeforeSchema,
                RecordMissingKeyProperty,
                RecordMissingOptionalFields,
                SchemaUpdates,
                SpecialCharsInAttributes,
            ],
        )
    ],
)


class TestTargetOrtto(StandardTests):
    @pytest.fixture(scope="class")
    @classmethod
    def resource(cls) -> Iterator[Sandbox]:
        yield SANDBOX
        SANDBOX.stop()
