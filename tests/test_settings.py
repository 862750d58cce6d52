"""Spec sections 1 and 2: settings, per-stream settings and stream routing."""

from __future__ import annotations

from dataclasses import fields

import pytest

from target_ortto.errors import ConfigError
from target_ortto.setting_fields import REQUIRED, default_of
from target_ortto.settings import Settings, StreamSettings, parse_settings

API_KEY = "sk-test-0123456789abcdef"


def parse(**config):
    return parse_settings({"api_key": API_KEY, **config})


def stream(name="people", **raw):
    return parse(streams={name: raw}).streams[name]


def config_error(config):
    with pytest.raises(ConfigError) as caught:
        parse_settings(config)
    return str(caught.value)


def error(**config):
    return config_error({"api_key": API_KEY, **config})


class TestDefaults:
    def test_an_empty_config_gets_each_declared_default(self):
        settings = parse()
        for f in fields(Settings):
            if default_of(f) is not REQUIRED:
                assert getattr(settings, f.name) == default_of(f), f.name

    def test_default_base_url_is_the_default_region(self):
        assert parse().base_url == "https://api.ap3api.com"

    def test_stream_defaults(self):
        settings = stream()
        assert settings == StreamSettings()
        for f in fields(StreamSettings):
            assert getattr(settings, f.name) == default_of(f), f.name

    def test_empty_strings_from_the_environment_mean_the_default(self):
        assert parse(batch_size="", region="", dry_run="") == parse()


class TestApiKey:
    @pytest.mark.parametrize("config", [{}, {"api_key": ""}, {"api_key": None}])
    def test_missing_api_key_is_a_config_error_naming_it(self, config):
        assert "api_key" in config_error(config)

    def test_a_non_string_api_key_is_refused_without_echoing_it(self):
        message = config_error({"api_key": 987654321})
        assert "api_key" in message and "987654321" not in message

    @pytest.mark.parametrize(
        "config",
        [
            {"batch_size": 0},
            {"region": "mars"},
            {"api_url": "http://example.com"},
            {"api_url": "not a url"},
            {"null_values": "drop"},
            {"dry_run": "perhaps"},
            {"default_phone_country": "Australia"},
            {"streams": {"people": {"colour": "red"}}},
            {"streams": {"accounts": {"mode": "update"}}},
            {"streams": "people"},
        ],
    )
    def test_no_config_error_contains_the_api_key(self, config):
        assert API_KEY not in error(**config)


class TestBaseUrl:
    @pytest.mark.parametrize(
        ("region", "url"),
        [
            ("default", "https://api.ap3api.com"),
            ("au", "https://api.au.ap3api.com"),
            ("eu", "https://api.eu.ap3api.com"),
        ],
    )
    def test_region_picks_the_base_url(self, region, url):
        settings = parse(region=region)
        assert (settings.region, settings.base_url) == (region, url)

    @pytest.mark.parametrize("region", ["us", "AP3", "mars"])
    def test_unknown_region_is_a_config_error(self, region):
        assert "region" in error(region=region)

    def test_api_url_overrides_the_region(self):
        assert parse(region="eu", api_url="https://proxy.example.com").base_url == (
            "https://proxy.example.com"
        )

    def test_api_url_loses_its_trailing_slash(self):
        assert parse(api_url="https://proxy.example.com/ortto/").base_url == (
            "https://proxy.example.com/ortto"
        )

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "http://LOCALHOST",
            "http://[::1]:8080",
            "http://127.0.0.1",
        ],
    )
    def test_plain_http_is_allowed_for_loopback_hosts(self, url):
        assert parse(api_url=url).base_url == url

    @pytest.mark.parametrize(
        "url",
        [
            "http://example.com",
            "http://api.ap3api.com",
            "http://10.0.0.5:8080",
            "http://localhost.example.com",
            "http://[2001:db8::1]",
        ],
    )
    def test_plain_http_elsewhere_is_a_config_error(self, url):
        message = error(api_url=url)
        assert "api_url" in message and "https" in message

    @pytest.mark.parametrize("url", ["not a url", "ftp://example.com", "https://", "example.com"])
    def test_a_non_url_is_a_config_error(self, url):
        assert "api_url" in error(api_url=url)


class TestStringsFromEnvironment:
    @pytest.mark.parametrize(
        ("name", "text", "value"),
        [
            ("batch_size", "50", 50),
            ("max_concurrency", "4", 4),
            ("requests_per_second", "2.5", 2.5),
            ("request_timeout", "60", 60.0),
            ("max_retries", "0", 0),
            ("max_rejected_records", "10", 10),
        ],
    )
    def test_numbers_are_coerced(self, name, text, value):
        parsed = getattr(parse(**{name: text}), name)
        assert parsed == value and type(parsed) is type(value)

    @pytest.mark.parametrize(
        "name", ["async_merge", "create_custom_fields", "dry_run", "skip_unchanged"]
    )
    @pytest.mark.parametrize(
        ("text", "value"),
        [("true", True), ("TRUE", True), ("1", True), ("false", False), ("0", False)],
    )
    def test_booleans_are_coerced(self, name, text, value):
        assert getattr(parse(**{name: text}), name) is value

    def test_stream_settings_are_coerced(self):
        settings = stream(full_snapshot="true", max_deletes="5")
        assert (settings.full_snapshot, settings.max_deletes) == (True, 5)

    @pytest.mark.parametrize("name", ["async_merge", "dry_run", "skip_unchanged"])
    def test_a_word_that_is_not_a_boolean_is_a_config_error(self, name):
        assert name in error(**{name: "perhaps"})

    @pytest.mark.parametrize("name", ["batch_size", "requests_per_second", "max_retries"])
    def test_text_that_is_not_a_number_is_a_config_error(self, name):
        assert name in error(**{name: "lots"})


class TestRanges:
    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("batch_size", 0),
            ("batch_size", 101),
            ("batch_size", -1),
            ("batch_size", "101"),
            ("batch_size", True),
            ("max_concurrency", 0),
            ("requests_per_second", 0),
            ("requests_per_second", -1),
            ("request_timeout", 0),
            ("max_retries", -1),
            ("max_rejected_records", -1),
        ],
    )
    def test_out_of_range_is_a_config_error_naming_the_setting(self, name, value):
        assert f"'{name}'" in error(**{name: value})

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("batch_size", 1),
            ("batch_size", 100),
            ("max_concurrency", 1),
            ("max_concurrency", 100),
            ("requests_per_second", 30),
            ("requests_per_second", 0.5),
            ("max_retries", 0),
            ("max_rejected_records", 0),
        ],
    )
    def test_in_range_is_accepted(self, name, value):
        assert getattr(parse(**{name: value}), name) == value

    def test_negative_max_deletes_is_a_config_error(self):
        assert "streams.people.max_deletes" in error(streams={"people": {"max_deletes": -1}})


class TestChoices:
    @pytest.mark.parametrize(
        ("name", "good", "bad"),
        [
            ("null_values", ["skip", "clear"], "null"),
            ("on_invalid_record", ["fail", "reject"], "skip"),
        ],
    )
    def test_top_level_choices(self, name, good, bad):
        assert [getattr(parse(**{name: value}), name) for value in good] == good
        assert name in error(**{name: bad})

    @pytest.mark.parametrize(
        ("key", "good", "bad"),
        [
            ("object", ["person", "account", "audience"], "lead"),
            ("find_strategy", ["any", "next_if_empty", "all"], "first"),
            ("delete_behavior", ["none", "clear", "archive", "delete"], "purge"),
        ],
    )
    def test_stream_choices(self, key, good, bad):
        assert [getattr(stream(**{key: value}), key) for value in good] == good
        assert f"streams.people.{key}" in error(streams={"people": {key: bad}})

    def test_unknown_stream_key_is_a_config_error_listing_the_allowed_keys(self):
        message = error(streams={"people": {"merge_on": ["email"]}})
        assert "merge_on" in message and "streams.people" in message
        for f in fields(StreamSettings):
            assert f.name in message

    @pytest.mark.parametrize("mode", ["upsert", "update", "insert", "append"])
    def test_person_modes(self, mode):
        assert stream("people", mode=mode).mode == mode

    @pytest.mark.parametrize("mode", ["upsert", "insert", "append"])
    def test_account_modes(self, mode):
        assert stream("companies", mode=mode).mode == mode

    @pytest.mark.parametrize(
        ("name", "raw"),
        [
            ("accounts", {"mode": "update"}),
            ("public-Companies", {"mode": "update"}),
            ("crm_orgs", {"object": "account", "mode": "update"}),
            ("people", {"mode": "merge"}),
        ],
    )
    def test_a_mode_the_object_does_not_have_is_a_config_error(self, name, raw):
        assert f"streams.{name}.mode" in error(streams={name: raw})

    def test_merge_by_takes_a_column_or_up_to_three_for_people_and_two_for_accounts(self):
        assert stream(merge_by="email").merge_by == ("email",)
        assert stream(merge_by=["email", "str::ei"]).merge_by == ("email", "str::ei")
        assert stream(merge_by=["a", "b", "c"]).merge_by == ("a", "b", "c")
        assert "merge_by" in error(streams={"people": {"merge_by": ["a", "b", "c", "d"]}})
        assert "at most 2" in error(streams={"accounts": {"merge_by": ["a", "b", "c"]}})

    def test_find_strategy_all_is_for_people_only(self):
        assert stream(find_strategy="all").find_strategy == "all"
        assert "find_strategy" in error(streams={"accounts": {"find_strategy": "all"}})

    def test_field_map_must_be_an_object(self):
        assert stream(field_map={"nick": None}).field_map == {"nick": None}
        assert "field_map" in error(streams={"people": {"field_map": ["nick"]}})

    def test_field_types_maps_columns_to_the_custom_field_types_the_target_creates(self):
        chosen = {"bio": "large_text", "n": "integer", "on": "date", "at": "time"}
        assert stream(field_types=chosen).field_types == chosen
        assert stream().field_types == {}
        message = error(streams={"people": {"field_types": {"bio": "multi_select"}}})
        assert "streams.people.field_types" in message and "multi_select" in message
        assert "large_text" in message  # the allowed types
        assert "field_types" in error(streams={"people": {"field_types": ["bio"]}})

    def test_streams_must_be_an_object(self):
        assert "streams" in error(streams=["people"])
        assert "streams.people" in error(streams={"people": "person"})

    def test_default_phone_country_is_a_two_letter_code(self):
        assert parse(default_phone_country="au").default_phone_country == "AU"
        assert "default_phone_country" in error(default_phone_country="AUS")


class TestStreamLookup:
    def test_exact_name(self):
        settings = parse(streams={"people": {"mode": "insert"}, "People": {"mode": "append"}})
        assert settings.stream("People").mode == "append"

    @pytest.mark.parametrize("name", ["PEOPLE", "People", "public-people", "Public-People"])
    def test_ignores_case_and_a_public_prefix(self, name):
        assert parse(streams={"people": {"mode": "insert"}}).stream(name).mode == "insert"

    def test_configured_with_a_prefix_and_looked_up_in_another_case(self):
        settings = parse(streams={"public-people": {"mode": "insert"}})
        assert settings.stream("PUBLIC-PEOPLE").mode == "insert"

    def test_unconfigured_stream_gets_the_defaults(self):
        assert parse(streams={"people": {"mode": "insert"}}).stream("contacts") == StreamSettings()


INFERRED = {
    "person": "people person persons contacts contact users customers",
    "account": "accounts account organizations organization orgs companies company",
    "audience": "audience audiences audience_members audience_trials audience_newsletter_2024",
}


def spellings(name):
    return [name, name.upper(), name.title(), f"public-{name}", f"PUBLIC-{name.title()}"]


class TestObjectFor:
    @pytest.mark.parametrize(
        ("stream_name", "obj"),
        [
            (spelling, obj)
            for obj, names in INFERRED.items()
            for name in names.split()
            for spelling in spellings(name)
        ],
    )
    def test_inferred_from_the_stream_name(self, stream_name, obj):
        assert parse().object_for(stream_name) == obj

    def test_explicit_object_wins(self):
        settings = parse(streams={"people": {"object": "account"}, "leads": {"object": "person"}})
        assert settings.object_for("people") == "account"
        assert settings.object_for("public-Leads") == "person"

    @pytest.mark.parametrize(
        "stream_name", ["orders", "public-orders", "people_archive", "customer_orders", "audiencex"]
    )
    def test_unknown_name_is_a_config_error_showing_the_one_line_fix(self, stream_name):
        with pytest.raises(ConfigError) as caught:
            parse().object_for(stream_name)
        message = str(caught.value)
        assert f"'{stream_name}'" in message
        assert f'"streams": {{"{stream_name}": {{"object": "person"}}}}' in message
