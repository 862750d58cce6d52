"""Spec section 3: columns to Ortto fields, and record values to Ortto values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from target_ortto.errors import StreamError
from target_ortto.fields import FieldPlan
from target_ortto.items import Invalid
from target_ortto.naming import kebab_case
from target_ortto.objects import ACCOUNT, PERSON

STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
STR_LIST = {"type": "array", "items": STR}
KEY = "row_key"
ANN = {"str::email": "a@x.co"}
UTC = dt.timezone.utc
SYDNEY = dt.timezone(dt.timedelta(hours=10))


def nullable(schema):
    return {"anyOf": [schema, {"type": "null"}]}


def build(properties, obj=PERSON, **kwargs):
    """A plan merging on a neutral custom column, so any other column can be studied."""
    kwargs.setdefault("merge_by", (KEY,))
    return FieldPlan.build(obj, "s", {"properties": {KEY: STR, **properties}}, **kwargs)


def field_of(column, prop=STR, obj=PERSON, **kwargs):
    return {c.name: c.field_id for c in build({column: prop}, obj, **kwargs).columns}.get(column)


def people(properties, **kwargs):
    return FieldPlan.build(PERSON, "people", {"properties": properties}, **kwargs)


def accounts(properties, **kwargs):
    return FieldPlan.build(ACCOUNT, "accounts", {"properties": properties}, **kwargs)


def rows(table):
    """`col_a, col_b = field_id` lines -> (column, field_id) pairs."""
    pairs = []
    for line in table.strip().splitlines():
        columns, field_id = line.split("=")
        pairs += [(column.strip(), field_id.strip()) for column in columns.split(",")]
    return pairs


KEBAB = """
Lifetime Value, lifetimeValue, lifetime_value, LifetimeValue, lifetime-value = lifetime-value
LTV = ltv
LTVScore, ltv_score = ltv-score
address2 = address2
Address Line 2, address_line_2 = address-line-2
total-spend-USD = total-spend-usd
Café Owner = cafe-owner
Über-Score = uber-score
"""


class TestCustomFieldNames:
    @pytest.mark.parametrize(("column", "name"), rows(KEBAB))
    def test_lower_kebab_case(self, column, name):
        assert kebab_case(column) == name

    @pytest.mark.parametrize("column", ["", "___", "日本語", "!!"])
    def test_no_letters_or_digits_is_an_error_at_build(self, column):
        with pytest.raises(StreamError, match="field_map"):
            build({column: STR})

    def test_person_custom_fields_use_cm_and_account_custom_fields_use_oc(self):
        assert field_of("Lifetime Value", NUM) == "int:cm:lifetime-value"
        assert field_of("Lifetime Value", NUM, ACCOUNT) == "int:oc:lifetime-value"


PERSON_ALIASES = """
email = str::email
first_name, firstname = str::first
last_name, lastname, surname = str::last
name, full_name = str::name
phone, phone_number, mobile = phn::phone
city = geo::city
country = geo::country
region, state = geo::region
postal, postal_code, postcode, zip = str::postal
birthday, birth_date, date_of_birth = dtz::b
external_id = str::ei
ortto_person_id = str::person_id
gdpr = bol::gdpr
language = str::language
"""
ACCOUNT_ALIASES = """
name = str:o:name
website, domain, url = str:o:website
employees, employee_count = int:o:employees
industry = str:o:industry
address = str:o:address
city = geo:o:city
region, state = geo:o:region
country = geo:o:country
postal, postal_code, zip = str:o:postal
source = str:o:source
ortto_account_id = str:o:account_id
"""
LENIENT_ALIASES = """
EMAIL, Email = str::email
firstName, FirstName, First Name, first-name, FIRST_NAME = str::first
dateOfBirth, Date of Birth, date-of-birth = dtz::b
PhoneNumber, Phone Number = phn::phone
external-id, externalId, External ID = str::ei
"""
LENIENT_ACCOUNT_ALIASES = """
employeeCount, Employee Count = int:o:employees
Postal Code, postalCode = str:o:postal
ORTTO-ACCOUNT-ID, orttoAccountId = str:o:account_id
"""


class TestAliases:
    @pytest.mark.parametrize(("column", "field_id"), rows(PERSON_ALIASES))
    def test_person_alias(self, column, field_id):
        assert field_of(column) == field_id

    @pytest.mark.parametrize(("column", "field_id"), rows(ACCOUNT_ALIASES))
    def test_account_alias(self, column, field_id):
        assert field_of(column, obj=ACCOUNT) == field_id

    @pytest.mark.parametrize(
        ("obj", "column", "field_id"),
        [(PERSON, *row) for row in rows(LENIENT_ALIASES)]
        + [(ACCOUNT, *row) for row in rows(LENIENT_ACCOUNT_ALIASES)],
    )
    def test_lookup_ignores_case_and_reads_camel_case_spaces_and_dashes_as_underscores(
        self, obj, column, field_id
    ):
        assert field_of(column, obj=obj) == field_id

    def test_aliases_belong_to_their_object(self):
        assert field_of("first_name", obj=ACCOUNT) == "str:oc:first-name"
        assert field_of("industry") == "str:cm:industry"


NOT_FIELDS = [
    (PERSON, "first str:first STR::FIRST tags str:o:name str:oc:x str::nickname"),
    (ACCOUNT, "str::first str:cm:x str:o:revenue"),
]


PRECEDENCE = {
    "field_map beats alias": ("email", STR, {"email": "str:cm:work"}, "str:cm:work"),
    "field_map beats field-ID name": ("str::first", STR, {"str::first": "str::last"}, "str::last"),
    "field_map beats special column": ("tags", STR_LIST, {"tags": "sst:cm:tag"}, "sst:cm:tag"),
    "field_map to None drops the column": ("email", STR, {"email": None}, None),
    "field_map can map an object": ("meta", {"type": "object"}, {"meta": "obj:cm:m"}, "obj:cm:m"),
    "field_map can drop an object": ("meta", {"type": "object"}, {"meta": None}, None),
    "built-in field-ID name is sent as is": ("str::first", STR, {}, "str::first"),
    "custom field-ID name is sent as is": ("int:cm:score", INT, {}, "int:cm:score"),
    "alias beats custom": ("first_name", STR, {}, "str::first"),
    "anything else is custom": ("favourite_colour", STR, {}, "str:cm:favourite-colour"),
}


class TestPrecedence:
    @pytest.mark.parametrize(
        ("column", "prop", "field_map", "field_id"), PRECEDENCE.values(), ids=PRECEDENCE.keys()
    )
    def test_field_map_then_field_id_name_then_alias_then_custom(
        self, column, prop, field_map, field_id
    ):
        assert field_of(column, prop, field_map=field_map) == field_id

    def test_field_map_naming_a_missing_column_is_a_stream_error(self):
        with pytest.raises(StreamError, match="nickname"):
            build({"email": STR}, field_map={"nickname": "str::first"})

    @pytest.mark.parametrize(
        ("obj", "target"),
        [(obj, t) for obj, targets in NOT_FIELDS for t in targets.split()],
    )
    def test_field_map_to_a_non_field_id_other_object_or_unknown_builtin_is_an_error(
        self, obj, target
    ):
        with pytest.raises(StreamError, match="nick"):
            build({"nick": STR}, obj, field_map={"nick": target})

    def test_a_column_named_as_another_objects_field_id_is_an_error(self):
        with pytest.raises(StreamError, match="str:o:name"):
            build({"str:o:name": STR})

    @pytest.mark.parametrize(
        ("properties", "field_map"),
        [
            ({"email": STR, "Email": STR}, {}),
            ({"first_name": STR, "firstname": STR}, {}),
            ({"email": STR, "str::email": STR}, {}),
            ({"email": STR, "work_email": STR}, {"work_email": "str::email"}),
            ({"Plan Tier": STR, "plan_tier": STR}, {}),
        ],
    )
    def test_two_columns_to_the_same_field_is_a_stream_error(self, properties, field_map):
        with pytest.raises(StreamError, match="both become"):
            build(properties, field_map=field_map)

    def test_singer_metadata_is_never_sent(self):
        sdc = {"_sdc_extracted_at": STR, "_sdc_deleted_at": STR, "_sdc_sequence": INT}
        assert [c.name for c in build({"email": STR, **sdc}).columns] == [KEY, "email"]


CONSENT_LOOKALIKES = "email_permission emailPermission subscribed sms_opt_in sms_permission"
CONSENT_LOOKALIKES += " opted_in permission p sp P SP bol_p"


class TestConsent:
    @pytest.mark.parametrize("column", CONSENT_LOOKALIKES.split())
    @pytest.mark.parametrize("prop", [BOOL, STR], ids=["boolean", "string"])
    def test_consent_lookalike_columns_are_custom_fields_never_consent(self, column, prop):
        assert field_of(column, prop).split(":")[1] == "cm"

    def test_only_a_field_map_entry_or_a_column_named_with_the_field_id_sets_consent(self):
        assert field_of("opt_in", BOOL, field_map={"opt_in": "bol::p"}) == "bol::p"
        assert field_of("sms_ok", BOOL, field_map={"sms_ok": "bol::sp"}) == "bol::sp"
        assert (field_of("bol::p", BOOL), field_of("bol::sp", BOOL)) == ("bol::p", "bol::sp")


TYPE_TABLE = {
    "string": (STR, "str", "text"),
    "string-maxLength-255": ({"type": "string", "maxLength": 255}, "str", "text"),
    "string-maxLength-256": ({"type": "string", "maxLength": 256}, "txt", "large_text"),
    "date": ({"type": "string", "format": "date"}, "dtz", "date"),
    "date-time": ({"type": "string", "format": "date-time"}, "tme", "time"),
    "integer": (INT, "int", "integer"),
    "number": (NUM, "int", "decimal"),
    "boolean": (BOOL, "bol", "bool"),
    "array-of-strings": (STR_LIST, "sst", "multi_select"),
}
TYPE_CASES = (
    [pytest.param(*row, id=name) for name, row in TYPE_TABLE.items()]
    + [
        pytest.param(
            {**schema, "type": [schema["type"], "null"]}, prefix, display, id=f"{name}|null"
        )
        for name, (schema, prefix, display) in TYPE_TABLE.items()
    ]
    + [
        pytest.param(nullable(schema), prefix, display, id=f"anyOf-{name}-null")
        for name, (schema, prefix, display) in TYPE_TABLE.items()
    ]
)
UNTYPEABLE = {
    "object": {"type": "object"},
    "object|null": {"type": ["object", "null"], "properties": {"a": STR}},
    "anyOf-object-null": nullable({"type": "object"}),
    "array-of-objects": {"type": "array", "items": {"type": "object"}},
    "array-of-integers": {"type": "array", "items": INT},
    "anyOf-array-of-objects": nullable({"type": "array", "items": {"type": "object"}}),
    "anyOf-array-of-integers": nullable({"type": "array", "items": INT}),
    # tap-postgres `jsonb`: a union that can hold an object, though "string" is among it
    "jsonb-type-list": {"type": ["string", "object", "array", "number", "boolean", "null"]},
    "jsonb-anyOf": {"anyOf": [STR, {"type": "object"}, {"type": "null"}]},
    "string-or-array-of-integers": {"type": ["string", "array"], "items": INT},
}
JSONB = UNTYPEABLE["jsonb-type-list"]


class TestCustomFieldTypes:
    @pytest.mark.parametrize(("prop", "prefix", "display_type"), TYPE_CASES)
    def test_type_from_schema(self, prop, prefix, display_type):
        (column,) = [c for c in build({"col": prop}).columns if c.name == "col"]
        assert (column.field_id, column.display_type) == (f"{prefix}:cm:col", display_type)

    @pytest.mark.parametrize("prop", UNTYPEABLE.values(), ids=UNTYPEABLE.keys())
    def test_object_or_other_array_is_an_error_naming_the_column_and_three_fixes(self, prop):
        with pytest.raises(StreamError) as caught:
            build({"address_parts": prop})
        for words in ["address_parts", "field_map", "stream map", "flattening"]:
            assert words in str(caught.value)

    @pytest.mark.parametrize("prop", UNTYPEABLE.values(), ids=UNTYPEABLE.keys())
    def test_the_fixes_are_a_json_dumps_stream_map_a_null_field_map_or_flattening(self, prop):
        with pytest.raises(StreamError) as caught:
            build({"payload": prop})
        message = str(caught.value)
        assert "has no Ortto field type" in message
        for words in ["json.dumps(payload)", '{"payload": null}', "flattening_max_depth"]:
            assert words in message

    @pytest.mark.parametrize("target", ["obj:cm:payload", "str:cm:payload", None])
    def test_a_json_column_mapped_by_field_map_is_not_refused(self, target):
        plan = build({"payload": JSONB}, field_map={"payload": target})
        assert [c.field_id for c in plan.columns if c.name == "payload"] == (
            [target] if target else []
        )

    def test_a_json_column_named_with_a_field_id_is_not_refused(self):
        assert "obj:cm:payload" in {c.field_id for c in build({"obj:cm:payload": JSONB}).columns}

    @pytest.mark.parametrize(
        ("chosen", "prefix", "value", "sent"),
        [
            ("text", "str", 5, "5"),
            ("large_text", "txt", "x" * 4000, "x" * 4000),
            ("integer", "int", "7", 7),
            ("decimal", "int", "1.5", 1500),
            ("bool", "bol", "yes", True),
            ("date", "dtz", "2024-05-01", {"year": 2024, "month": 5, "day": 1, "timezone": "UTC"}),
            ("time", "tme", "2024-05-01T13:45:00Z", "2024-05-01T13:45:00Z"),
        ],
    )
    def test_field_types_chooses_the_custom_field_type_and_its_converter(
        self, chosen, prefix, value, sent
    ):
        plan = build({"bio": STR}, ACCOUNT, field_types={"bio": chosen})
        (column,) = [c for c in plan.columns if c.name == "bio"]
        assert (column.field_id, column.display_type) == (f"{prefix}:oc:bio", chosen)
        assert plan.apply({KEY: "k", "bio": value}).fields[f"{prefix}:oc:bio"] == sent

    def test_field_types_large_text_still_refuses_over_4000_characters(self):
        plan = build({"bio": STR}, ACCOUNT, field_types={"bio": "large_text"})
        assert plan.apply({KEY: "k", "bio": "x" * 4000}).fields["txt:oc:bio"] == "x" * 4000
        assert isinstance(plan.apply({KEY: "k", "bio": "x" * 4001}), Invalid)

    @pytest.mark.parametrize(
        ("properties", "field_types", "words"),
        [
            ({"bio": STR}, {"nope": "text"}, "field_types names columns the stream does not"),
            ({"email": STR}, {"email": "large_text"}, "do not become custom fields"),
            ({"bio": STR}, {"bio": "large_text"}, "do not become custom fields"),
        ],
    )
    def test_field_types_must_name_custom_field_columns(self, properties, field_types, words):
        field_map = {"bio": "txt:cm:about"} if "bio" in properties and "bio" in field_types else {}
        with pytest.raises(StreamError, match=words):
            build(properties, field_types=field_types, field_map=field_map)

    def test_field_types_do_not_unlock_a_json_column(self):
        with pytest.raises(StreamError, match=r"json\.dumps"):
            build({"payload": JSONB}, field_types={"payload": "large_text"})

    def test_an_explicit_custom_int_field_with_a_number_schema_is_a_decimal(self):
        plan = build({"int:oc:ltv": NUM}, ACCOUNT)
        assert plan.apply({KEY: "k", "int:oc:ltv": Decimal("1.5")}).fields["int:oc:ltv"] == 1500
        assert [c.display_type for c in plan.custom_fields if c.name == "int:oc:ltv"] == ["decimal"]

    def test_custom_fields_lists_only_custom_columns(self):
        plan = build({"email": STR, "Plan Tier": STR})
        assert {c.field_id for c in plan.custom_fields} == {"str:cm:row-key", "str:cm:plan-tier"}


class TestValuesInRecords:
    def test_decimal_too_large_makes_the_record_invalid(self):
        result = build({"ltv": NUM}, ACCOUNT).apply({KEY: "k", "ltv": Decimal("1E+30")})
        assert isinstance(result, Invalid) and result.field == "ltv"

    @pytest.mark.parametrize(
        ("prop", "field_map", "value", "sent"),
        [
            ({**STR, "format": "time"}, {}, dt.time(13, 45), "13:45:00"),
            ({**STR, "format": "date"}, {"at": "str:oc:at"}, dt.date(2024, 5, 1), "2024-05-01"),
            (
                nullable({**STR, "format": "date-time"}),
                {"at": "txt:oc:at"},
                dt.datetime(2024, 5, 1, 23, 45, tzinfo=SYDNEY),
                "2024-05-01T23:45:00+10:00",
            ),
            ({**STR, "format": "time"}, {"at": "txt:oc:at"}, dt.time(9, 5, 1), "09:05:01"),
        ],
    )
    def test_time_columns_and_dates_mapped_to_text_are_sent_as_iso_text(
        self, prop, field_map, value, sent
    ):
        plan = build({"at": prop}, ACCOUNT, field_map=field_map)
        (column,) = [c for c in plan.columns if c.name == "at"]
        assert plan.apply({KEY: "k", "at": value}).fields[column.field_id] == sent

    def test_a_deeply_nested_object_field_value_is_invalid_naming_the_column(self):
        deep: list = []
        for _ in range(100):
            deep = [deep]
        plan = build({"doc": {}}, ACCOUNT, field_map={"doc": "obj:oc:doc"})
        result = plan.apply({KEY: "k", "doc": deep})
        assert isinstance(result, Invalid) and result.field == "doc"
        assert plan.apply({KEY: "k", "doc": {"a": [1]}}).fields["obj:oc:doc"] == {"a": [1]}

    def test_bool_is_not_an_integer_in_a_record(self):
        result = build({"score": INT}, ACCOUNT).apply({KEY: "k", "score": True})
        assert isinstance(result, Invalid) and result.field == "score"


class TestRecords:
    def test_builtin_values_follow_the_builtins_type(self):
        plan = people({"email": STR, "city": STR, "mobile": STR, "birthday": STR, "gdpr": BOOL})
        record = {"email": "a@x.co", "city": "Sydney", "mobile": "+61 401 234 567", "gdpr": "yes"}
        fields = plan.apply({**record, "birthday": dt.date(1990, 5, 1)}).fields
        assert fields["geo::city"] == {"name": "Sydney"}
        assert fields["phn::phone"] == {"c": "61", "n": "401234567"}
        assert fields["dtz::b"] == {"year": 1990, "month": 5, "day": 1, "timezone": "UTC"}
        assert fields["bol::gdpr"] is True

    @pytest.mark.parametrize("column", ["country", "country_code", "Country Code"])
    def test_phone_is_read_in_the_row_s_own_country_before_the_default(self, column):
        plan = people({"email": STR, "phone": STR, column: STR}, default_phone_country="US")
        au = plan.apply({"email": "a@x.co", "phone": "0401 234 567", column: "Australia"})
        us = plan.apply({"email": "b@x.co", "phone": "(650) 253-0000", column: None})
        unknown = plan.apply({"email": "c@x.co", "phone": "(650) 253-0000", column: "Atlantis"})
        assert au.fields["phn::phone"] == {"c": "61", "n": "401234567"}
        assert (
            us.fields["phn::phone"]
            == unknown.fields["phn::phone"]
            == {
                "c": "1",
                "n": "6502530000",
            }
        )

    def test_an_unreadable_phone_rejects_the_person_by_default(self):
        plan = people({"email": STR, "phone": STR})
        result = plan.apply({"email": "a@x.co", "phone": "0401 234 567"})
        assert isinstance(result, Invalid) and "phn::phone" in result.reason
        assert "meltano config set target-ortto invalid_phones drop" in result.reason

    def test_invalid_phones_drop_writes_the_person_without_the_phone(self):
        plan = people({"email": STR, "phone": STR, "first_name": STR}, invalid_phones="drop")
        result = plan.apply({"email": "a@x.co", "phone": "0401 234 567", "first_name": "Ann"})
        assert result.fields == {"str::email": "a@x.co", "str::first": "Ann"}
        assert len(result.dropped) == 1 and "'0401 234 567'" in result.dropped[0]
        good = plan.apply({"email": "b@x.co", "phone": "+61 401 234 567"})
        assert good.dropped == [] and "phn::phone" in good.fields

    def test_a_phone_that_is_the_merge_key_is_never_dropped(self):
        plan = people(
            {"phone": STR, "external_id": STR}, merge_by=("phone",), invalid_phones="drop"
        )
        result = plan.apply({"phone": "nonsense", "external_id": "E-1"})
        assert isinstance(result, Invalid)

    def test_phone_uses_the_plans_default_country(self):
        plan = people({"email": STR, "phone": STR}, default_phone_country="AU")
        fields = plan.apply({"email": "ann@example.com", "phone": "0401 234 567"}).fields
        assert fields["phn::phone"] == {"c": "61", "n": "401234567"}

    def test_account_employees_is_an_integer(self):
        plan = accounts({"name": STR, "employees": NUM})
        fields = plan.apply({"name": "Acme", "employees": Decimal("12")}).fields
        assert fields["int:o:employees"] == 12
        assert isinstance(plan.apply({"name": "Acme", "employees": Decimal("12.5")}), Invalid)

    @pytest.mark.parametrize(
        ("column", "prop", "value", "field_id"),
        [
            ("phone", STR, "not a phone", "phn::phone"),
            ("email", STR, "not-an-email", "str::email"),
            ("first_name", STR, "x" * 256, "str::first"),
            ("ltv", NUM, "lots", "int:cm:ltv"),
        ],
    )
    def test_invalid_names_the_column_and_field_id(self, column, prop, value, field_id):
        plan = people({"str::ei": STR, column: prop}, merge_by=("str::ei",))
        result = plan.apply({"str::ei": "E1", column: value})
        assert isinstance(result, Invalid) and result.field == column
        assert f"'{column}'" in result.reason and field_id in result.reason

    def test_tags_and_unset_tags_go_to_the_record_not_its_fields(self):
        plan = people({"email": STR, "tags": STR_LIST, "Unset Tags": STR_LIST})
        merged = plan.apply({"email": "a@x.co", "tags": ["vip"], "Unset Tags": ["new"]})
        assert merged.body() == {"fields": ANN, "tags": ["vip"], "unset_tags": ["new"]}

    @pytest.mark.parametrize("column", ["tags", "unset_tags"])
    @pytest.mark.parametrize("value", ["vip", ["vip", 3], [None]])
    def test_tags_and_unset_tags_must_be_lists_of_strings(self, column, value):
        result = people({"email": STR, column: STR_LIST}).apply({"email": "a@x.co", column: value})
        assert isinstance(result, Invalid) and result.field == column

    @pytest.mark.parametrize("column", ["tags", "unset_tags"])
    def test_tags_and_unset_tags_accept_a_json_encoded_list_as_flattening_writes_it(self, column):
        merged = people({"email": STR, column: STR}).apply(
            {"email": "a@x.co", column: '["vip", "beta"]'}
        )
        assert getattr(merged, column) == ["vip", "beta"]

    @pytest.mark.parametrize("field_id", ["sst:cm:plans", None])
    def test_a_multi_select_field_accepts_a_json_encoded_list(self, field_id):
        column = field_id or "sst:cm:plans"
        plan = people({"email": STR, column: STR}, field_map={column: field_id} if field_id else {})
        merged = plan.apply({"email": "a@x.co", column: '["pro", "team"]'})
        assert merged.fields["sst:cm:plans"] == ["pro", "team"]

    def test_a_string_column_not_mapped_to_a_list_field_stays_text(self):
        merged = people({"email": STR, "plans": STR}).apply({"email": "a@x.co", "plans": '["pro"]'})
        assert merged.fields["str:cm:plans"] == '["pro"]'

    def test_too_long_text_in_a_custom_text_field_names_the_setting_that_fixes_it(self):
        result = people({"email": STR, "bio": STR}).apply({"email": "a@x.co", "bio": "x" * 256})
        assert isinstance(result, Invalid)
        assert "longer than Ortto's 255" in result.reason
        assert 'streams.people.field_types: {"bio": "large_text"}' in result.reason
        assert "existing txt: field" in result.reason

    def test_too_long_text_in_an_explicit_text_field_says_to_map_it_to_a_txt_field(self):
        plan = people({"email": STR, "bio": STR}, field_map={"bio": "str:cm:bio"})
        result = plan.apply({"email": "a@x.co", "bio": "x" * 256})
        assert isinstance(result, Invalid) and "txt: (large text) field" in result.reason

    @pytest.mark.parametrize("column", ["source_ip", "ip_address", "IPAddress", "sourceIp"])
    def test_person_source_ip_goes_to_location(self, column):
        merged = people({"email": STR, column: STR}).apply({"email": "a@x.co", column: "1.2.3.4"})
        assert (merged.fields, merged.location) == (ANN, {"source_ip": "1.2.3.4"})

    def test_account_source_ip_is_an_ordinary_custom_field(self):
        assert field_of("source_ip", obj=ACCOUNT) == "str:oc:source-ip"


NULLS = {"email": STR, "str::ei": STR, "first_name": STR}


class TestNulls:
    def test_skipped_by_default(self):
        merged = people(NULLS).apply({"email": "a@x.co", "first_name": None})
        assert merged.fields == ANN

    def test_sent_as_null_with_clear_nulls(self):
        merged = people(NULLS, clear_nulls=True).apply({"email": "a@x.co", "first_name": None})
        assert merged.fields == {**ANN, "str::first": None}

    def test_merge_by_fields_are_never_nulled(self):
        plan = people(NULLS, merge_by=("str::email", "str::ei"), clear_nulls=True)
        assert plan.apply({"email": None, "str::ei": "E1"}).fields == {"str::ei": "E1"}

    def test_a_column_missing_from_the_record_is_not_sent(self):
        merged = people(NULLS, clear_nulls=True).apply({"email": "a@x.co"})
        assert merged.fields == ANN

    def test_a_null_never_clears_a_consent_field(self):
        consent = {"email": STR, "bol::p": BOOL, "sms": BOOL}
        plan = people(consent, field_map={"sms": "bol::sp"}, clear_nulls=True)
        merged = plan.apply({"email": "a@x.co", "bol::p": None, "sms": None})
        assert merged.fields == ANN
        assert plan.apply({"email": "a@x.co", "bol::p": False}).fields == {**ANN, "bol::p": False}


class TestMergeBy:
    def test_defaults_person_email_or_else_external_id_and_account_name(self):
        assert people({"email": STR, "external_id": STR}).merge_by == ("str::email",)
        assert people({"external_id": STR, "first_name": STR}).merge_by == ("str::ei",)
        assert accounts({"name": STR, "domain": STR}).merge_by == ("str:o:name",)

    def test_configured_by_column_name_or_field_id(self):
        properties = {"Work Email": STR, "crm_id": STR}
        field_map = {"Work Email": "str::email", "crm_id": "str::ei"}
        plan = people(properties, field_map=field_map, merge_by=("str::ei", "Work Email"))
        assert plan.merge_by == ("str::ei", "str::email")
        plan = people(properties, field_map=field_map, merge_by=("crm_id",))
        assert plan.merge_by == ("str::ei",)

    @pytest.mark.parametrize(
        ("properties", "merge_by", "field_map"),
        [
            ({"first_name": STR}, (), {}),
            ({"email": STR}, ("external_id",), {}),
            ({"email": STR}, ("str::ei",), {}),
            ({"email": STR}, ("email",), {"email": None}),
        ],
    )
    def test_a_field_no_column_provides_is_a_stream_error(self, properties, merge_by, field_map):
        with pytest.raises(StreamError, match="merge_by"):
            people(properties, merge_by=merge_by, field_map=field_map)

    def test_person_id_must_stand_alone(self):
        with pytest.raises(StreamError, match="str::person_id"):
            people({"ortto_person_id": STR, "email": STR}, merge_by=("ortto_person_id", "email"))
        plan = people({"ortto_person_id": STR}, merge_by=("ortto_person_id",))
        assert plan.merge_by == ("str::person_id",)

    def test_account_id_must_stand_alone(self):
        with pytest.raises(StreamError, match="str:o:account_id"):
            accounts({"ortto_account_id": STR, "name": STR}, merge_by=("ortto_account_id", "name"))

    @pytest.mark.parametrize("record", [{"email": None}, {}, {"first_name": "Ann"}])
    def test_a_record_with_no_merge_by_value_is_invalid_naming_them(self, record):
        plan = people({"email": STR, "str::ei": STR}, merge_by=("str::email", "str::ei"))
        result = plan.apply(record)
        assert isinstance(result, Invalid)
        assert "str::email" in result.reason and "str::ei" in result.reason

    def test_no_email_suggests_merging_by_the_stream_s_external_id_too(self):
        plan = people({"email": STR, "external_id": STR, "first_name": STR})
        result = plan.apply({"email": None, "external_id": "E-1"})
        assert isinstance(result, Invalid)
        assert result.reason == (
            "no value in any merge_by column (email -> str::email). The stream also has "
            "external_id: to merge by it when email is empty, run `meltano config set "
            'target-ortto streams.people.merge_by \'["email", "external_id"]\'` and '
            "`meltano config set target-ortto streams.people.find_strategy next_if_empty`"
        )

    def test_an_account_without_name_suggests_its_website(self):
        result = accounts({"name": STR, "domain": STR}).apply({"domain": "x.co"})
        assert isinstance(result, Invalid)
        assert 'streams.accounts.merge_by \'["name", "domain"]\'' in result.reason
        assert "find_strategy next_if_empty" in result.reason

    @pytest.mark.parametrize(
        "properties",
        [{"email": STR, "first_name": STR}, {"email": STR, "external_id": STR}],
    )
    def test_no_second_key_is_suggested_where_there_is_none_to_add(self, properties):
        merge_by = ("email", "external_id") if "external_id" in properties else ()
        result = people(properties, merge_by=merge_by).apply({"first_name": "Ann"})
        assert isinstance(result, Invalid)
        assert "meltano" not in result.reason

    def test_a_person_with_neither_email_nor_external_id_is_invalid(self):
        result = people({"crm_id": STR, "email": STR}, merge_by=("crm_id",)).apply({"crm_id": "C"})
        assert isinstance(result, Invalid)
        assert "str::email" in result.reason and "str::ei" in result.reason

    def test_a_person_merged_by_person_id_needs_no_email(self):
        plan = people({"ortto_person_id": STR}, merge_by=("ortto_person_id",))
        record = {"ortto_person_id": "006913C5B70ABF827F703C00"}
        assert plan.apply(record).fields == {"str::person_id": "006913c5b70abf827f703c00"}


@pytest.mark.parametrize(
    "field_id", ["str::fcm_ios_token", "str::apn_ios_token", "str::android_token"]
)
def test_push_token_fields_are_built_in_person_fields(field_id):
    assert people({"email": STR, field_id: STR}).apply(
        {"email": "a@x.co", field_id: "t"}
    ).fields == {
        **ANN,
        field_id: "t",
    }


class TestOrttoIds:
    @pytest.mark.parametrize("column", ["person_id", "account_id", "id", "personId"])
    def test_a_warehouse_id_column_is_a_custom_field_not_an_ortto_id(self, column):
        assert field_of(column).startswith("str:cm:")
        assert field_of(column, obj=ACCOUNT).startswith("str:oc:")

    @pytest.mark.parametrize("value", ["p-1", "123", "00" * 11, "00" * 12 + "0", "zz" * 12])
    def test_a_value_for_an_ortto_id_field_must_be_24_hex_characters(self, value):
        plan = people({"ortto_person_id": STR}, merge_by=("ortto_person_id",))
        result = plan.apply({"ortto_person_id": value})
        assert isinstance(result, Invalid) and result.field == "ortto_person_id"
        assert "24 hex" in result.reason


TWO_KEYS = {"email": STR, "external_id": STR}


class TestFoldKey:
    def test_email_ignores_case_and_other_keys_are_exact(self):
        plan = people(TWO_KEYS, merge_by=("email", "external_id"), find_strategy="all")
        assert plan.apply({"email": "Ann@X.co"}).key == plan.apply({"email": "ann@x.co"}).key
        assert plan.apply({"external_id": "A"}).key != plan.apply({"external_id": "a"}).key

    @pytest.mark.parametrize("find_strategy", ["any", "next_if_empty"])
    def test_first_present_merge_field_for_any_and_next_if_empty(self, find_strategy):
        plan = people(TWO_KEYS, merge_by=("email", "external_id"), find_strategy=find_strategy)
        both = plan.apply({"email": "a@x.co", "external_id": "E1"}).key
        assert both == plan.apply({"email": "A@X.co", "external_id": "E2"}).key
        assert both != plan.apply({"external_id": "E1"}).key
        assert plan.apply({"external_id": "E1"}).key == plan.apply({"external_id": "E1"}).key

    def test_every_merge_field_for_all(self):
        plan = people(TWO_KEYS, merge_by=("email", "external_id"), find_strategy="all")
        key = plan.apply({"email": "a@x.co", "external_id": "E1"}).key
        assert key == plan.apply({"email": "A@x.co", "external_id": "E1"}).key
        assert key != plan.apply({"email": "a@x.co", "external_id": "E2"}).key
        assert key != plan.apply({"email": "a@x.co"}).key
