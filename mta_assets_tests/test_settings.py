"""The settings model: one line per bad variable, credentials apart from URLs, and docs/settings.md in step."""

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from mta_assets.defs.resources import build_resources
from mta_assets.settings import VARIABLES, SettingError, load, validate_environment
from mta_assets.settings.docs import markdown

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "settings.md"
PASSWORD = "S3cr|et pa55:w@rd"
WEEK = "2023-12-30"


def test_docs_settings_table_is_generated_from_the_model():
    assert DOCS.read_text() == markdown(), "regenerate: ./mta python -m mta_assets.settings --markdown > docs/settings.md"


def test_every_variable_the_code_reads_is_in_the_model_and_the_docs():
    read: dict[str, set[str]] = {}
    for source in [*(REPO / "mta_assets").rglob("*.py"), *(REPO / "scripts").rglob("*.py")]:
        for name in re.findall(r"[\"'](MTA_[A-Z0-9_]+)[\"']", source.read_text()):
            read.setdefault(name, set()).add(str(source.relative_to(REPO)))
    assert "MTA_LAKE_URL" in read and "MTA_LATE_WEEK_HOURS" in read
    not_in_model = {name: sorted(where) for name, where in read.items() if name not in VARIABLES}
    assert not_in_model == {}, "add these to MtaSettings (mta_assets/settings/model.py)"
    table = DOCS.read_text()
    assert sorted(name for name in VARIABLES if f"| `{name}` |" not in table) == []


def test_a_bad_value_is_one_line_naming_the_variable_and_its_allowed_values(monkeypatch):
    monkeypatch.setenv("MTA_MAX_FILE_BYTES", "-1")
    with pytest.raises(SettingError) as error:
        validate_environment()
    assert str(error.value) == "MTA_MAX_FILE_BYTES=-1 is outside >= 1024; a normal week is about 33 MB"
    assert error.value.permanent and isinstance(error.value, ValueError)


def test_each_bad_variable_gets_its_own_line(monkeypatch):
    monkeypatch.setenv("MTA_SCHEDULE_HOUR", "24")
    monkeypatch.setenv("MTA_OPEN_DATA_PAGE_SIZE", "0")
    monkeypatch.setenv("MTA_SOURCE_DEADLINE_S", "nan")
    monkeypatch.setenv("MTA_LAST_WEEK", "2024-02-11")
    monkeypatch.setenv("MTA_WEEKS_PER_RUN", "")  # empty is unset
    with pytest.raises(SettingError) as error:
        load()
    assert sorted(str(error.value).splitlines()) == [
        "MTA_LAST_WEEK=2024-02-11 is a Sunday; weeks are keyed by the Saturday they begin "
        "(the week holding 2024-02-11 is 2024-02-10)",
        "MTA_OPEN_DATA_PAGE_SIZE=0 is outside 1..50000",
        "MTA_SCHEDULE_HOUR=24 is outside 0..23",
        "MTA_SOURCE_DEADLINE_S=nan is outside >= 0.1",
    ]


def test_settings_of_the_environment_are_typed(monkeypatch):
    monkeypatch.setenv("MTA_SOURCE_DEADLINE_S", "12.5")
    monkeypatch.setenv("MTA_LATE_WEEK_HOURS", "12")
    monkeypatch.setenv("MTA_LAST_WEEK", "2024-02-10")
    settings = load()
    assert (settings.source_deadline_s, settings.late_week_hours, settings.last_week) == (12.5, 12.0, "2024-02-10")
    assert (settings.max_file_bytes, settings.weeks_per_run) == (200_000_000, 0)


@pytest.mark.parametrize("name", ["MTA_SOURCE_URL", "MTA_STATION_KEY_URL"])
def test_a_url_with_a_password_is_refused_naming_the_settings_to_use(monkeypatch, name):
    monkeypatch.setenv(name, "http://mta:S3cr%7Cet@mirror.test:8765/turnstile")
    with pytest.raises(SettingError) as error:
        load()
    message = str(error.value)
    assert message.startswith(f"{name}='http://mirror.test:8765/turnstile' carries a user and password in the URL")
    if name == "MTA_SOURCE_URL":
        assert message.endswith("set MTA_SOURCE_USER and MTA_SOURCE_PASSWORD instead")
    assert "S3cr" not in message and "mta:" not in message


def test_a_bad_secret_is_named_and_never_shown(monkeypatch):
    monkeypatch.setenv("MTA_ALERT_WEBHOOK_URL", "hooks.example.test/services/T0KEN-secret")
    with pytest.raises(SettingError) as error:
        load()
    assert str(error.value).startswith("MTA_ALERT_WEBHOOK_URL is not an http(s) URL (value not shown")
    assert "T0KEN" not in str(error.value)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("MTA_")}
    return subprocess.run(
        [sys.executable, "-c", code], env={**clean, "PYTHONPATH": str(REPO), **env},
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )


def test_loading_the_code_location_with_a_bad_setting_prints_one_line():
    done = run_python(
        "import mta_assets.definitions",
        MTA_MAX_FILE_BYTES="-1", MTA_SOURCE_URL=f"http://mta:{PASSWORD.replace('|', '%7C')}@127.0.0.1:9/x",
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "MTA_SOURCE_URL='http://127.0.0.1:9/x' carries a user and password in the URL (not shown); put the URL "
        "without them in MTA_SOURCE_URL and set MTA_SOURCE_USER and MTA_SOURCE_PASSWORD instead",
        "MTA_MAX_FILE_BYTES=-1 is outside >= 1024; a normal week is about 33 MB",
    ]
    assert "S3cr" not in done.stderr + done.stdout


def test_the_check_command_says_what_it_checked():
    done = run_python("import runpy; runpy.run_module('mta_assets.settings', run_name='__main__')")
    assert done.returncode == 2  # argparse: an action is required
    ok = subprocess.run(
        [sys.executable, "-m", "mta_assets.settings", "--check"], capture_output=True, text=True, timeout=60, cwd=REPO,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MTA_")}, "PYTHONPATH": str(REPO)},
    )
    assert (ok.returncode, ok.stdout.strip()) == (0, f"settings: {len(VARIABLES)} MTA_* variables checked")


def test_source_credentials_are_bound_by_name_and_sent_as_basic_auth(monkeypatch, mirror, synthetic_week, tmp_path):
    synthetic_week(WEEK)
    mirror.require_auth("mta", PASSWORD)
    monkeypatch.setenv("MTA_SOURCE_URL", mirror.url)
    monkeypatch.setenv("MTA_SOURCE_USER", "mta")
    monkeypatch.setenv("MTA_SOURCE_PASSWORD", PASSWORD)
    source = build_resources()["mta_source"]
    # What Dagster shows of the resource: the variables' names, not their values.
    assert source.password == dg.EnvVar("MTA_SOURCE_PASSWORD") and PASSWORD not in repr(source)
    with dg.build_resources({"mta_source": source}) as resources:
        download = resources.mta_source.download(WEEK, tmp_path / "out")
    assert download.url == f"{mirror.url}/turnstile_240106.txt" and download.size > 0
    assert PASSWORD not in str(download.metadata())
