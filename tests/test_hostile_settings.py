"""Hostile settings and output paths: each is a one-paragraph error naming the setting,
found before anything is sent, and never shows the key or a URL's password."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEY, PEOPLE_SCHEMA, assert_clean, record_messages, run_cli, schema_message

from target_ortto.errors import ConfigError
from target_ortto.setting_fields import declared
from target_ortto.settings import Settings, parse_settings
from target_ortto.target import TargetOrtto

WRITES = ("/merge", "/create", "/subscribe", "/archive", "/delete")
PERSON = {"id": 1, "email": "ann@example.com", "first_name": "Ann"}


PEOPLE = {key: PEOPLE_SCHEMA[key] for key in PERSON}


def people_messages() -> list[dict[str, Any]]:
    return [schema_message("people", PEOPLE, ["id"]), *record_messages("people", [PERSON])]


def run(
    args: list[str],
    tmp_path: Path,
    messages: list[dict[str, Any]],
    variables: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """`target-ortto ARGS` (run_cli takes no `--config ENV`), in `tmp_path`, checked clean."""
    done = subprocess.run(
        [sys.executable, "-m", "target_ortto", *args],
        input="".join(json.dumps(m) + "\n" for m in messages),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, **(variables or {})},
    )
    assert_clean(done.stdout + done.stderr)
    return done


def writes(sandbox) -> list[str]:
    return [r.path for r in sandbox.requests if r.path.endswith(WRITES)]


def failed_with(done: subprocess.CompletedProcess, *words: str) -> str:
    """The run exited 1 with one error line holding every word; returns that line."""
    assert done.returncode == 1, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if "| ERROR" in line]
    assert errors, done.stderr[-2000:]
    for word in words:
        assert word in errors[-1], errors[-1]
    return errors[-1]


def env_config(**variables: str) -> dict[str, Any]:
    """Settings the target reads from these TARGET_ORTTO_* variables."""
    names = {f"TARGET_ORTTO_{name.upper()}": value for name, value in variables.items()}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in names.items():
            patch.setenv(name, value)
        return TargetOrtto._env_var_config


# ----- booleans and integers from the environment -----


@pytest.mark.parametrize("text", ["Y", "n", "on", "off", "t", "2", "enable", "truee", " "])
def test_a_boolean_variable_in_no_usual_spelling_is_refused_not_read_as_false(
    sandbox, config, tmp_path, text
):
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    done = run(
        ["--config", str(config_file), "--config", "ENV"],
        tmp_path,
        people_messages(),
        {"TARGET_ORTTO_DRY_RUN": text},
    )

    failed_with(done, "TARGET_ORTTO_DRY_RUN", "true or false")
    assert sandbox.requests == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        *[("true", True), ("TRUE", True), ("Yes", True), ("1", True)],
        *[("false", False), ("No", False), ("0", False), ("FALSE", False)],
    ],
)
def test_every_boolean_setting_takes_the_usual_spellings_in_any_case(text, value):
    TargetOrtto.append_builtin_config(TargetOrtto.config_jsonschema)
    booleans = [
        name
        for name, prop in TargetOrtto.config_jsonschema["properties"].items()
        if "boolean" in prop.get("type", [])
    ]
    assert {"dry_run", "add_record_metadata", "validate_records"} <= set(booleans)

    parsed = env_config(**dict.fromkeys(booleans, text))

    assert parsed == dict.fromkeys(booleans, value)


@pytest.mark.parametrize("name", ["validate_records", "add_record_metadata", "flattening_enabled"])
def test_the_sdk_s_own_boolean_settings_are_as_strict_as_ours(name):
    with pytest.raises(ConfigError, match=f"TARGET_ORTTO_{name.upper()}"):
        env_config(**{name: "Y"})


@pytest.mark.parametrize(
    ("name", "text"),
    [("batch_size", "ten"), ("batch_size_rows", "1e3"), ("max_retries", "3.5")],
)
def test_an_integer_variable_that_is_no_integer_is_a_clear_error(name, text):
    with pytest.raises(ConfigError, match=f"TARGET_ORTTO_{name.upper()}.*must be a number"):
        env_config(**{name: text})


def test_a_json_variable_that_is_no_json_names_its_variable(config, tmp_path):
    variables = {"TARGET_ORTTO_API_KEY": API_KEY, "TARGET_ORTTO_STREAMS": "{people: person}"}
    done = run(["--config", "ENV"], tmp_path, [], variables)

    failed_with(done, "TARGET_ORTTO_STREAMS", "must be JSON")


# ----- numbers -----

NUMBERS = [f.name for f, hint in declared(Settings) if hint in (int, float)]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "NaN", "Infinity"])
@pytest.mark.parametrize("name", NUMBERS)
def test_no_number_setting_takes_nan_or_infinity(name, value):
    with pytest.raises(ConfigError, match=f"'{name}' must be a number"):
        parse_settings({"api_key": API_KEY, name: value})


def test_nan_in_a_config_file_stops_the_run_as_not_json(config, tmp_path):
    config["request_timeout"] = float("nan")  # json.dumps writes NaN, which Python reads

    failed_with(run_cli(config, "", tmp_path), "config.json", "NaN is not a JSON number")


# ----- keys and files -----


@pytest.mark.parametrize("typo", ["dryrun", "api-key", "Dry_Run", "batchsize", "stream"])
def test_an_unknown_top_level_key_is_refused_as_a_typo(config, tmp_path, typo):
    config[typo] = True

    failed_with(run_cli(config, "", tmp_path), "Unknown settings", typo)


def test_the_sdk_s_built_in_settings_are_not_unknown(sandbox, config, tmp_path):
    config.update(
        batch_size_rows=50,
        add_record_metadata=False,
        validate_records=True,
        load_method="upsert",
        stream_maps={"people": {"first_name": "first_name"}},
        stream_map_config={},
        flattening_enabled=False,
        flattening_max_depth=1,
        dry_run=True,
    )

    done = run_cli(config, people_messages(), tmp_path)

    assert done.returncode == 0, done.stderr[-2000:]


def run_with_config_text(text: str | None, tmp_path: Path) -> subprocess.CompletedProcess:
    """The CLI with a config file holding `text` (None: no such file)."""
    path = tmp_path / "config.json"
    if text is not None:
        path.write_text(text)
    return run(["--config", str(path)], tmp_path, [])


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "is not JSON"),
        ("   \n", "is not JSON"),
        ('{"api_key": "x",', "is not JSON"),
        ("[]", "one JSON object"),
        ('"api_key"', "one JSON object"),
        ("null", "one JSON object"),
        (None, "cannot be read"),
    ],
)
def test_a_config_file_that_is_empty_missing_or_no_object_is_a_clear_error(tmp_path, text, words):
    failed_with(run_with_config_text(text, tmp_path), "config.json", words)


def test_an_invalid_config_file_is_not_quoted_so_a_key_in_it_stays_hidden(tmp_path):
    done = run_with_config_text(f'{{"api_key": "{API_KEY}" "region": "eu"}}', tmp_path)

    failed_with(done, "is not JSON")


@pytest.mark.parametrize("country", ["XX", "ZZ", "EU", "UK", "A1", "AUS", "", 61])
def test_default_phone_country_must_be_a_region_with_phone_numbers(config, tmp_path, country):
    if country == "":
        country = " "  # "" means the default
    config["default_phone_country"] = country

    failed_with(run_cli(config, "", tmp_path), "default_phone_country")


def test_real_regions_in_any_case_are_phone_countries():
    for code in ("au", "GB", "us", "Nz"):
        settings = parse_settings({"api_key": API_KEY, "default_phone_country": code})
        assert settings.default_phone_country == code.upper()


# ----- secrets never shown -----


@pytest.mark.parametrize("key", [123456789012345, 1234.5678, [API_KEY], {"key": API_KEY}])
def test_an_api_key_that_is_not_text_is_refused_without_showing_it(config, tmp_path, key):
    config["api_key"] = key

    done = run_cli(config, "", tmp_path)

    failed_with(done, "api_key", "as text")
    for shown in (API_KEY, "123456789012345", "1234.5678"):
        assert shown not in done.stderr + done.stdout


@pytest.mark.parametrize(
    "url",
    [
        "https://ortto-user:s3cret-pass@127.0.0.1:9/",  # nobody listens: the API fails
        "ftp://ortto-user:s3cret-pass@proxy.example/",  # not http(s): the setting fails
        "http://ortto-user:s3cret-pass@proxy.example/",  # plain http off loopback
    ],
)
def test_a_password_in_api_url_never_appears_in_any_message(config, tmp_path, url):
    config.update(api_url=url, max_retries=0)

    done = run_cli(config, people_messages(), tmp_path)

    assert done.returncode == 1
    assert "s3cret-pass" not in done.stdout + done.stderr
    assert "ortto-user" not in done.stdout + done.stderr


# ----- output files: found unwritable at run start, before any write -----


def unwritable_paths(tmp_path: Path) -> dict[str, str]:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    return {"a directory": str(tmp_path), "under a file": str(a_file / "out.jsonl")}


@pytest.mark.parametrize("where", ["a directory", "under a file"])
@pytest.mark.parametrize("setting", ["rejected_records_path", "request_log_path"])
def test_an_unwritable_output_path_stops_the_run_before_any_write(
    sandbox, config, tmp_path, setting, where
):
    config.update(on_invalid_record="reject", **{setting: unwritable_paths(tmp_path)[where]})

    done = run_cli(config, people_messages(), tmp_path)

    failed_with(done, setting, "cannot be written")
    assert writes(sandbox) == []


def test_an_output_path_without_permission_stops_the_run_before_any_write(
    sandbox, config, tmp_path
):
    # Tests run as root in CI, who may write anywhere a permission bit allows: /proc
    # refuses new files to everyone.
    config.update(on_invalid_record="reject", rejected_records_path="/proc/ortto-test/r.jsonl")

    done = run_cli(config, people_messages(), tmp_path)

    failed_with(done, "rejected_records_path", "cannot be written")
    assert writes(sandbox) == []


def test_checking_an_output_path_leaves_no_file_or_folder_behind(sandbox, config, tmp_path):
    rejected = tmp_path / "new" / "deeper" / "rejected.jsonl"
    config.update(on_invalid_record="reject", rejected_records_path=str(rejected))

    done = run_cli(config, people_messages(), tmp_path)

    assert done.returncode == 0, done.stderr[-2000:]
    assert not (tmp_path / "new").exists()
    assert len(sandbox.store.people) == 1


@pytest.mark.parametrize("method", ["overwrite", "replace"])
def test_a_load_method_the_target_cannot_honour_is_refused_saying_why(config, tmp_path, method):
    config["load_method"] = method

    line = failed_with(run_cli(config, people_messages(), tmp_path), "load_method", method)
    assert "meltano config set target-ortto load_method upsert" in line
    assert "never empties Ortto" in line


@pytest.mark.parametrize("method", ["append-only", "upsert"])
def test_the_load_methods_the_target_honours_are_accepted(sandbox, config, tmp_path, method):
    config.update(load_method=method, dry_run=True)

    assert run_cli(config, people_messages(), tmp_path).returncode == 0


def test_an_api_url_where_nothing_listens_stops_within_seconds_naming_it(config, tmp_path):
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config["api_url"] = f"http://127.0.0.1:{port}"

    started = time.monotonic()
    done = run_cli(config, people_messages(), tmp_path)
    assert time.monotonic() - started < 20  # the CLI's own start-up included; was 69 s
    failed_with(done, "nothing answers at api_url=http://127.0.0.1", "region")
    assert '"type": "STATE"' not in done.stdout
