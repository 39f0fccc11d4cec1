"""Settings precedence, their validation, and the deployment record on disk."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import pytest

from imgup import config
from imgup.config import Deployment, Settings, load_settings
from imgup.errors import ExitCode, UsageError

# One value per layer, all different from each other and from the defaults.
LAYERS = {
    "stack_name": {"flag": "from-flag", "env": "from-env", "file": "from-file"},
    "concurrency": {"flag": 7, "env": "6", "file": 5},
    "retries": {"flag": 0, "env": "2", "file": 9},
    "timeout": {"flag": 1.5, "env": "2.5", "file": 3.5},
    "target": {"flag": "local", "env": "aws", "file": "local"},
}
EXPECTED = {
    "stack_name": {"flag": "from-flag", "env": "from-env", "file": "from-file"},
    "concurrency": {"flag": 7, "env": 6, "file": 5},
    "retries": {"flag": 0, "env": 2, "file": 9},
    "timeout": {"flag": 1.5, "env": 2.5, "file": 3.5},
    "target": {"flag": "local", "env": "aws", "file": "local"},
}


def write_config(directory: Path, values: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


def a_deployment(**changes) -> Deployment:
    values = dict(
        target="local",
        stack_name="gallery",
        region="us-east-1",
        api_url="http://127.0.0.1:5000/_api/us-east-1/abc123/v1",
        api_id="abc123",
        bucket="gallery-123456789012-us-east-1",
        table="gallery-ImageTable-XYZ",
        artifacts_bucket="imgup-artifacts-123456789012-us-east-1",
        max_upload_bytes=5 * 1024 * 1024,
        endpoint_url="http://127.0.0.1:5000",
        stack_status="CREATE_COMPLETE",
        deployed_at="2026-11-25T12:00:00+00:00",
    )
    values.update(changes)
    return Deployment(**values)


# --- precedence ------------------------------------------------------------------------


def test_with_nothing_set_every_setting_has_its_default():
    assert load_settings() == Settings()
    assert load_settings().stack_name == config.DEFAULT_STACK_NAME


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default(
    name, isolated, monkeypatch
):
    layer = LAYERS[name]
    env_name = "IMGUP_" + name.upper()
    default = getattr(Settings(), name)

    assert getattr(load_settings(), name) == default

    write_config(isolated, {name: layer["file"]})
    assert getattr(load_settings(), name) == EXPECTED[name]["file"]

    monkeypatch.setenv(env_name, str(layer["env"]))
    assert getattr(load_settings(), name) == EXPECTED[name]["env"]

    assert getattr(load_settings(**{name: layer["flag"]}), name) == EXPECTED[name]["flag"]


def test_a_flag_left_as_none_falls_through_to_the_next_layer(isolated, monkeypatch):
    write_config(isolated, {"concurrency": 3})
    monkeypatch.setenv("IMGUP_RETRIES", "1")

    settings = load_settings(concurrency=None, retries=None, stack_name=None)

    assert (settings.concurrency, settings.retries, settings.stack_name) == (3, 1, "imgup")


def test_an_empty_environment_variable_counts_as_unset(isolated, monkeypatch):
    write_config(isolated, {"concurrency": 3})
    monkeypatch.setenv("IMGUP_CONCURRENCY", "")

    assert load_settings().concurrency == 3


def test_settings_from_different_layers_combine(isolated, monkeypatch):
    write_config(isolated, {"stack_name": "gallery", "retries": 1})
    monkeypatch.setenv("IMGUP_CONCURRENCY", "8")

    settings = load_settings(timeout=5)

    assert settings == Settings(stack_name="gallery", concurrency=8, retries=1, timeout=5.0)


# --- bad values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("IMGUP_CONCURRENCY", "many"),
        ("IMGUP_CONCURRENCY", "0"),
        ("IMGUP_CONCURRENCY", "2.5"),
        ("IMGUP_RETRIES", "-1"),
        ("IMGUP_TIMEOUT", "soon"),
        ("IMGUP_TIMEOUT", "0"),
        ("IMGUP_CONCURRENCY", "65"),
        ("IMGUP_RETRIES", "11"),
        ("IMGUP_TIMEOUT", "3601"),
        ("IMGUP_TIMEOUT", "1e308"),
        ("IMGUP_TIMEOUT", "inf"),
        ("IMGUP_TARGET", "cloud"),
    ],
)
def test_a_bad_value_in_the_environment_is_a_usage_error_naming_the_variable(variable, raw, monkeypatch):
    monkeypatch.setenv(variable, raw)

    with pytest.raises(UsageError) as caught:
        load_settings()

    assert variable in caught.value.message
    assert caught.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    "values",
    [
        {"concurrency": "many"},
        {"concurrency": 0},
        {"retries": -3},
        {"timeout": "slow"},
        {"timeout": 0.01},
        {"timeout": 1e308},
        {"concurrency": 10**6},
        {"retries": 100},
    ],
    ids=lambda values: json.dumps(values),
)
def test_a_bad_value_in_the_config_file_is_a_usage_error_naming_the_file(values, isolated):
    path = write_config(isolated, values)

    with pytest.raises(UsageError) as caught:
        load_settings()

    assert str(path) in caught.value.message
    assert next(iter(values)) in caught.value.message


def test_a_timeout_that_is_not_a_number_is_refused_naming_its_source(monkeypatch):
    # NaN passes the "value < minimum" check; httpx then fails on it with a bare ValueError.
    monkeypatch.setenv("IMGUP_TIMEOUT", "nan")

    with pytest.raises(UsageError) as caught:
        load_settings()

    assert "IMGUP_TIMEOUT" in caught.value.message


@pytest.mark.parametrize("values", [{"concurrency": 2.5}, {"retries": True}], ids=["fraction", "bool"])
def test_a_fractional_or_boolean_count_in_the_config_file_is_refused_naming_the_file(values, isolated):
    # JSON has real numbers and booleans: neither 2.5 workers nor `true` retries is a count,
    # and silently truncating them to 2 and 1 would hide the mistake.
    path = write_config(isolated, values)

    with pytest.raises(UsageError) as caught:
        load_settings()

    assert str(path) in caught.value.message


def test_a_bad_flag_value_is_a_usage_error_naming_the_flag():
    with pytest.raises(UsageError) as caught:
        load_settings(concurrency=0)

    assert "--concurrency" in caught.value.message


def test_a_flag_wins_even_over_a_bad_environment_value(monkeypatch):
    monkeypatch.setenv("IMGUP_CONCURRENCY", "many")

    assert load_settings(concurrency=2).concurrency == 2


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '"gallery"'])
def test_a_config_file_that_is_not_a_json_object_is_a_usage_error_naming_it(content, isolated):
    isolated.mkdir(parents=True)
    path = isolated / "config.json"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(UsageError) as caught:
        load_settings()

    assert str(path) in caught.value.message


# --- stack names -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ab", "imgup", "my-gallery-2", "a" + "b" * 29])
def test_valid_stack_names_are_accepted(name):
    assert load_settings(stack_name=name).stack_name == name


@pytest.mark.parametrize(
    "name",
    [
        "Gallery",  # uppercase
        "a" * 31,  # too long for the bucket name built from it
        "2gallery",  # leading digit
        "my--gallery",  # double hyphen
        "gallery-",  # trailing hyphen
        "g",  # too short
        "my_gallery",  # underscore
        "",
    ],
)
def test_invalid_stack_names_are_refused_with_the_rule_in_the_hint(name):
    with pytest.raises(UsageError) as caught:
        load_settings(stack_name=name)

    assert repr(name) in caught.value.message
    assert "lowercase" in (caught.value.hint or "")


def test_an_invalid_stack_name_from_the_environment_is_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv("IMGUP_STACK_NAME", "MyStack")

    with pytest.raises(UsageError) as caught:
        load_settings()

    assert "IMGUP_STACK_NAME" in caught.value.message


def test_an_invalid_stack_name_from_the_config_file_is_refused_naming_the_file(isolated):
    path = write_config(isolated, {"stack_name": "My Stack"})

    with pytest.raises(UsageError) as caught:
        load_settings()

    assert str(path) in caught.value.message


# --- the deployment record -------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    ["{truncated", "", "null", "[]", '{"target": "local"}', "\udcff"],
    ids=["bad-json", "empty", "null", "list", "missing-fields", "not-utf8"],
)
def test_a_corrupt_deployment_record_is_a_usage_error_naming_the_file_and_the_fix(content, isolated):
    isolated.mkdir(parents=True)
    path = isolated / "deployment.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))

    with pytest.raises(UsageError) as caught:
        config.read_record(path)

    assert caught.value.exit_code == ExitCode.USAGE
    assert str(path) in caught.value.message
    assert "imgup deploy" in (caught.value.hint or "")


WRONG_FIELDS = {
    "target": ["cloud", 1, None],
    "stack_name": ["Bad Name", 7, ""],
    "region": ["nowhere-1", ["us-east-1"]],
    "api_url": ["ftp://x", 5, ""],
    "endpoint_url": ["localhost:5000", 5],
    "max_upload_bytes": ["5MB", 0, -1, 2.5, True, None],
    "bucket": [None, 3, ""],
    "profile": [3, ["default"]],
    "deployed_at": [20261125],
}


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name, values in WRONG_FIELDS.items() for value in values],
    ids=lambda item: json.dumps(item),
)
def test_a_deployment_record_with_a_wrong_field_is_a_usage_error_naming_the_field(name, value, isolated):
    record = dataclasses.asdict(a_deployment())
    record[name] = value
    isolated.mkdir(parents=True)
    path = isolated / "deployment.json"
    path.write_text(json.dumps(record), encoding="utf-8")

    with pytest.raises(UsageError) as caught:
        config.read_record(path)

    assert str(path) in caught.value.message and name in caught.value.message


def test_a_record_reads_back_equal_and_a_field_a_newer_imgup_wrote_is_ignored(isolated):
    isolated.mkdir(parents=True)
    path = isolated / "deployment.json"
    record = dataclasses.asdict(a_deployment(account="123456789012"))
    path.write_text(json.dumps({**record, "from_the_future": 1}), encoding="utf-8")

    assert config.read_record(path) == a_deployment(account="123456789012")


def test_a_missing_record_is_file_not_found_for_the_caller_to_judge(isolated):
    with pytest.raises(FileNotFoundError):
        config.read_record(isolated / "deployment.json")


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda path: None, "is missing"),
        (lambda path: path.mkdir(), "is a directory"),
        (lambda path: path.write_bytes(b"\xff\xfe key"), "is not UTF-8"),
        (lambda path: path.write_text("\n"), "is empty"),
        (lambda path: path.write_text("two words\n"), "does not hold an API key"),
        (lambda path: path.write_text("key\nmore\n"), "does not hold an API key"),
    ],
    ids=["missing", "directory", "not-utf8", "empty", "space", "two-lines"],
)
def test_a_broken_api_key_file_is_a_usage_error_naming_the_file_and_the_fix(make, problem, isolated):
    isolated.mkdir(parents=True)
    path = isolated / "api-key"
    make(path)

    with pytest.raises(UsageError) as caught:
        config.read_api_key(path)

    assert caught.value.message.startswith(f"The API key file {path} {problem}")
    assert "imgup deploy" in (caught.value.hint or "")


def test_write_private_leaves_a_file_only_its_owner_can_read_even_over_an_open_one(isolated):
    isolated.mkdir(parents=True)
    path = isolated / "api-key"
    path.write_text("old", encoding="utf-8")
    path.chmod(0o644)

    config.write_private(path, "k\n")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config.read_api_key(path) == "k"
    assert [p.name for p in isolated.iterdir()] == ["api-key"]  # no temporary file left


def test_an_api_key_file_others_can_read_gets_a_warning_with_the_fix(isolated):
    path = isolated / "api-key"
    config.write_private(path, "k\n")
    assert config.key_file_warning(path) is None

    path.chmod(0o644)

    warning = config.key_file_warning(path)
    assert warning and "0644" in warning and f"chmod 600 {path}" in warning
    assert config.read_api_key(path) == "k"  # a warning, not an error


# --- the config file's keys and types --------------------------------------------------


def test_an_unknown_key_in_the_config_file_is_named_with_the_known_ones(isolated):
    path = write_config(isolated, {"concurency": 8, "retries": 2})

    with pytest.raises(UsageError) as caught:
        load_settings()

    assert str(path) in caught.value.message and "'concurency'" in caught.value.message
    for known in ("stack_name", "region", "profile", "concurrency", "retries", "timeout", "target"):
        assert known in (caught.value.hint or "")


@pytest.mark.parametrize("values", [{"region": 5}, {"profile": ["work"]}, {"stack_name": True}])
def test_a_string_setting_that_is_not_a_json_string_is_refused(values, isolated):
    path = write_config(isolated, values)

    with pytest.raises(UsageError) as caught:
        load_settings()

    assert str(path) in caught.value.message and next(iter(values)) in caught.value.message


@pytest.mark.parametrize("region", ["nowhere-1", "US-EAST-1", "us_east_1", "us-east", "eu-west-1 "])
def test_a_region_that_is_not_a_region_name_is_refused_naming_its_source(region, monkeypatch):
    with pytest.raises(UsageError) as caught:
        load_settings(region=region)
    assert "--region" in caught.value.message

    monkeypatch.setenv("IMGUP_REGION", region)
    with pytest.raises(UsageError) as caught:
        load_settings()
    assert "IMGUP_REGION" in caught.value.message


@pytest.mark.parametrize("region", ["us-east-1", "ap-southeast-2", "us-gov-west-1", "eusc-de-east-1"])
def test_region_names_are_accepted_and_their_source_remembered(region):
    settings = load_settings(region=region)

    assert settings.region == region
    assert settings.sources == {"region": "--region"}
    assert settings.given("region") and not settings.given("stack_name")
