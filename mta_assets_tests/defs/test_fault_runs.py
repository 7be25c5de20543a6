"""Faults seen from Dagster runs: a permanent error fails once, and no secret reaches DAGSTER_HOME."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import dagster as dg
import pytest
import requests

from mta_assets.defs.resources import MTASource, build_resources
from mta_assets.defs.turnstile.assets import turnstile_weeks
from mta_devtools.mirror import MirrorServer
from mta_assets_tests.fixtures_gcs import free_port

REPO = Path(__file__).resolve().parents[2]
WEEK = "2023-12-30"
NAME = "turnstile_240106.txt"
PASSWORD = "Pa55|w0rd:With@Specials"


def materialize_with_cli(home: Path, env: dict[str, str], week: str) -> subprocess.CompletedProcess:
    command = [
        str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m", "mta_assets.definitions",
        "--select", "turnstile_csv*", "--partition", week,
    ]
    full_env = {**os.environ, "DAGSTER_HOME": str(home), **env}
    return subprocess.run(command, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=300)


def secret_forms(secret: str) -> list[str]:
    return sorted({secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret), "Pa55%7C", "Pa55|w0rd"})


def test_no_form_of_a_source_password_reaches_dagster_home(mirror: MirrorServer, synthetic_week, tmp_path):
    synthetic_week(WEEK, readings=1_000)
    mirror.require_auth("mta", PASSWORD)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    authority = mirror.url.removeprefix("http://")
    env = {
        "MTA_LAKE_URL": str(tmp_path / "lake"),
        "MTA_SOURCE_URL": f"{mirror.url}/developers/turnstile",
        "MTA_SOURCE_USER": "mta",
        "MTA_SOURCE_PASSWORD": PASSWORD,
    }
    good = materialize_with_cli(home, env, WEEK)
    assert good.returncode == 0, good.stderr[-3000:]
    wrong = materialize_with_cli(home, {**env, "MTA_SOURCE_PASSWORD": "Wrong%7CPa55word"}, WEEK)
    assert wrong.returncode != 0
    assert "refused access (HTTP 401); check MTA_SOURCE_USER and MTA_SOURCE_PASSWORD" in wrong.stderr + wrong.stdout
    # The old way, the password inside the URL, is refused before anything runs, naming the settings to use.
    in_url = materialize_with_cli(
        home, {**env, "MTA_SOURCE_URL": f"http://mta:{urllib.parse.quote(PASSWORD, safe='')}@{authority}/developers/turnstile"}, WEEK
    )
    assert in_url.returncode != 0
    assert "set MTA_SOURCE_USER and MTA_SOURCE_PASSWORD instead" in in_url.stderr

    leaks = []
    for path in [*home.rglob("*"), *(tmp_path / "lake").rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            leaks += [(str(path), form) for form in [*secret_forms(PASSWORD), "Wrong%7CPa55word", "Wrong|Pa55word"]
                      if form.encode() in data]
    output = good.stdout + good.stderr + wrong.stdout + wrong.stderr + in_url.stdout + in_url.stderr
    leaks += [("CLI output", form) for form in secret_forms(PASSWORD) if form in output]
    graphql = webserver_answers(home, {**os.environ, "DAGSTER_HOME": str(home), **env})
    leaks += [("GraphQL", form) for form in [*secret_forms(PASSWORD), "Wrong%7CPa55word"] if form in graphql]
    assert leaks == []
    assert f"{mirror.url}/developers/turnstile/{NAME}" in output, "the URL is shown, without its userinfo"
    # The answers are about these runs: their events, the url metadata, the resource's variable name.
    assert f"{mirror.url}/developers/turnstile/{NAME}" in graphql
    assert "refused access (HTTP 401)" in graphql and "MTA_SOURCE_URL" in graphql and "MTA_SOURCE_PASSWORD" in graphql


RUNS_QUERY = "{ runsOrError { ... on Runs { results { runId status tags { key value } runConfigYaml } } } }"
LOGS_QUERY = """query Logs($runId: ID!) { logsForRun(runId: $runId) { __typename ... on EventConnection { events {
  __typename ... on MessageEvent { message }
  ... on MaterializationEvent { metadataEntries { label __typename ... on UrlMetadataEntry { url }
      ... on TextMetadataEntry { text } ... on PathMetadataEntry { path } } }
  ... on ExecutionStepFailureEvent { error { message stack } } } } } }"""
RESOURCES_QUERY = """{ repositoriesOrError { ... on RepositoryConnection { nodes { name
  allTopLevelResourceDetails { name configuredValues { key value type } } } } } }"""


def webserver_answers(home: Path, env: dict[str, str]) -> str:
    """Every run, event and resource setting as the UI's GraphQL API serves them, as one text."""
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("dagster-webserver")), "-m", "mta_assets.definitions",
        "-h", "127.0.0.1", "-p", str(port),
    ]
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.RequestException:  # not up yet, or not answering yet
                time.sleep(0.2)
        else:
            pytest.fail(f"dagster-webserver did not answer at {url}")

        def ask(query: str, variables: dict | None = None) -> dict:
            response = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
            assert response.ok, response.text[:2000]
            return response.json()

        runs = ask(RUNS_QUERY)
        answers = [runs, ask(RESOURCES_QUERY)]
        for run in runs["data"]["runsOrError"]["results"]:
            answers.append(ask(LOGS_QUERY, {"runId": run["runId"]}))
        assert len(runs["data"]["runsOrError"]["results"]) == 2
        return json.dumps(answers)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_a_permanent_source_error_fails_the_run_once(mirror: MirrorServer, tmp_path, monkeypatch):
    monkeypatch.setenv("MTA_SOURCE_URL", mirror.url)
    monkeypatch.setenv("MTA_LAKE_URL", str(tmp_path / "lake"))
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [turnstile_weeks],
            partition_key=WEEK,
            resources=build_resources(),
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    assert f"week {WEEK}: {mirror.url}/{NAME} is not published (HTTP 404)" in failure.step_failure_data.error.message
    assert [path for method, path in mirror.requests if method == "GET"] == [f"/{NAME}"], "404 is not retried"
    assert not (tmp_path / "lake").exists() or not any(p.is_file() for p in (tmp_path / "lake").rglob("*"))


def test_sigterm_stops_a_download_without_a_retry_and_leaves_the_lake_as_it_was(mirror: MirrorServer, synthetic_week, tmp_path):
    """What `timeout`, `kill` and the UI's Terminate do to a run worker, against a trickling source."""
    synthetic_week(WEEK, readings=20_000)
    mirror.inject(NAME, *["trickle:0.02"] * 3)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ, "DAGSTER_HOME": str(home), "MTA_SOURCE_URL": mirror.url, "MTA_LAKE_URL": str(tmp_path / "lake"),
        "MTA_STAGING_DIR": str(tmp_path / "staging"), "MTA_MIN_BYTES_PER_S": "1", "MTA_SOURCE_DEADLINE_S": "600",
    }
    command = [
        str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m", "mta_assets.definitions",
        "--select", "turnstile_csv*", "--partition", WEEK,
    ]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(600):  # the download has begun once the mirror saw the GET
            if any(method == "GET" for method, _path in mirror.requests):
                break
            time.sleep(0.1)
        time.sleep(1)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode != 0
    assert "the run was interrupted" in output
    assert "STEP_RESTARTED" not in output and "STEP_UP_FOR_RETRY" not in output
    assert [method for method, _path in mirror.requests if method == "GET"] == ["GET"]
    assert not any(path.is_file() for path in (tmp_path / "lake").rglob("*"))
    assert not any(path.is_file() for path in (tmp_path / "staging").rglob("*"))


def test_a_stalled_source_costs_a_week_its_deadline_once_across_step_retries(
    mirror: MirrorServer, synthetic_week, tmp_path, monkeypatch
):
    """The week's download deadline counts from its first attempt: the step's retries share it."""
    synthetic_week(WEEK, readings=1_000)
    mirror.inject(NAME, *["hang:30"] * 50)
    for name, value in {
        "MTA_SOURCE_URL": mirror.url, "MTA_LAKE_URL": str(tmp_path / "lake"), "MTA_STAGING_DIR": str(tmp_path / "staging"),
        "MTA_SOURCE_STALL_TIMEOUT_S": "0.5", "MTA_SOURCE_DEADLINE_S": "1", "MTA_SOURCE_WEEK_DEADLINE_S": "2",
    }.items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [turnstile_weeks], partition_key=WEEK, resources=build_resources(), instance=instance, raise_on_error=False
        )
    elapsed = time.monotonic() - started
    assert not result.success
    failures = [event for event in result.all_events if event.is_step_failure]
    message = failures[-1].step_failure_data.error.message
    # Attempts of 1 s each until the 2 s of the week are spent; the step's next retry, after
    # Dagster's delay (up to 40 s), gives up at once instead of downloading again.
    assert f"week {WEEK}: gave up on {mirror.url}/{NAME}: the week's download deadline of 2 s" in message
    assert elapsed < 2 + 0.5 + 20 + 40 + 15, f"{elapsed:.0f} s"
    gets = [path for method, path in mirror.requests if method == "GET"]
    assert 2 <= len(gets) <= 10


def _range_with_fast_source_retries(
    mirror, tmp_path, monkeypatch, instance, weeks: list[str], in_flight: int, retries: int = 1
):
    """The turnstile step over ``weeks`` in one run, ``retries`` transport retries per download, no backoff."""
    for name, value in {
        "MTA_SOURCE_URL": mirror.url, "MTA_LAKE_URL": str(tmp_path / "lake"), "MTA_STAGING_DIR": str(tmp_path / "staging"),
    }.items():
        monkeypatch.setenv(name, value)
    resources = {**build_resources(), "mta_source": MTASource(base_url=mirror.url, retries=retries, backoff_factor_s=0)}
    return dg.materialize(
        [turnstile_weeks], resources=resources, instance=instance, raise_on_error=False,
        run_config={"ops": {"turnstile_weeks": {"config": {"weeks_in_flight": in_flight}}}},
        tags={"dagster/asset_partition_range_start": weeks[0], "dagster/asset_partition_range_end": weeks[-1]},
    )


@pytest.mark.parametrize("in_flight", [1, 2])
def test_a_source_found_down_is_not_asked_for_the_other_weeks_until_the_step_retries(
    mirror: MirrorServer, synthetic_week, tmp_path, monkeypatch, in_flight
):
    """Once two weeks' source failed past its retries, the weeks not started yet fail at once, retryable."""
    weeks = ["2023-12-30", "2024-01-06", "2024-01-13", "2024-01-20"]
    names = [synthetic_week(week, readings=1_000).name for week in weeks]
    for name in names[:2]:  # one attempt of each of the first two weeks: its request and one transport retry
        mirror.inject(name, "503", "503")
    with dg.DagsterInstance.ephemeral() as instance:
        result = _range_with_fast_source_retries(mirror, tmp_path, monkeypatch, instance, weeks, in_flight)
        status = instance.get_status_by_partition(
            dg.AssetKey("turnstile_readings"), weeks, turnstile_weeks.partitions_def
        )
    assert result.success  # the step's retry, with the source back, committed every week
    assert status == dict.fromkeys(weeks, dg.AssetPartitionStatus.MATERIALIZED)
    (retry,) = [event for event in result.all_events if event.event_type_value == "STEP_UP_FOR_RETRY"]
    error = retry.event_specific_data.error  # Dagster's retry request, caused by the step's failure
    message = error.cause.message
    for week, name in zip(weeks[:2], names[:2]):
        assert f"week {week}: {mirror.url}/{name} answered HTTP 503" in message
    for week in weeks[2:]:
        assert f"week {week}: not tried, the source was down (see weeks {weeks[0]} and {weeks[1]})" in message
    gets = [path.lstrip("/") for method, path in mirror.requests if method == "GET"]
    # The first attempt asked for the first two weeks only (one at a time or both at once);
    # the retry asked once for each week.
    assert sorted(gets[:4]) == sorted([names[0], names[0], names[1], names[1]])
    assert sorted(gets[4:]) == sorted(names)


def test_the_step_s_retry_runs_only_the_weeks_an_earlier_attempt_did_not_commit(
    mirror: MirrorServer, synthetic_week, tmp_path, monkeypatch
):
    weeks = ["2023-12-30", "2024-01-06", "2024-01-13"]
    names = [synthetic_week(week, readings=1_000 + 100 * n).name for n, week in enumerate(weeks)]
    mirror.inject(names[1], "503", "503")  # the second week's first attempt: its request and one transport retry
    readings = dg.AssetKey("turnstile_readings")
    with dg.DagsterInstance.ephemeral() as instance:
        result = _range_with_fast_source_retries(mirror, tmp_path, monkeypatch, instance, weeks, in_flight=1)
        status = instance.get_status_by_partition(readings, weeks, turnstile_weeks.partitions_def)
        latest = {
            week: instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=readings, asset_partitions=[week]), limit=1
            ).records[0].asset_materialization.metadata["dagster/row_count"].value
            for week in weeks
        }
    assert result.success
    assert status == dict.fromkeys(weeks, dg.AssetPartitionStatus.MATERIALIZED)
    gets = [path.lstrip("/") for method, path in mirror.requests if method == "GET"]
    # One week's failing file stops no other week: the first attempt committed the first and
    # the third, and the retry downloaded only the second.
    assert gets == [names[0], names[1], names[1], names[2], names[1]]
    # Its latest materialization still carries the metadata it was committed with.
    assert latest[weeks[0]] < latest[weeks[1]] < latest[weeks[2]]
    assert latest[weeks[0]] > 900


def test_a_week_that_failed_permanently_is_not_downloaded_again_by_the_step_s_retry(
    mirror: MirrorServer, synthetic_week, tmp_path, monkeypatch
):
    """A permanent error fails once: the retry for another week's 503 leaves the bad week alone."""
    weeks = ["2023-12-30", "2024-01-06"]
    names = [synthetic_week(week, readings=1_000).name for week in weeks]
    mirror.inject(names[0], *["html"] * 5)  # a maintenance page with 200, however often it is asked for
    mirror.inject(names[1], "503")  # once, with no transport retry: the step's retry gets the file
    readings = dg.AssetKey("turnstile_readings")
    with dg.DagsterInstance.ephemeral() as instance:
        result = _range_with_fast_source_retries(mirror, tmp_path, monkeypatch, instance, weeks, in_flight=1, retries=0)
        status = instance.get_status_by_partition(readings, weeks, turnstile_weeks.partitions_def)
        said = [entry.user_message for entry in instance.all_logs(result.run_id)]
    gets = [path.lstrip("/") for method, path in mirror.requests if method == "GET"]
    assert gets.count(names[0]) == 1, gets
    assert gets.count(names[1]) == 2, gets
    assert len([e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]) == 1
    assert status[weeks[1]] == dg.AssetPartitionStatus.MATERIALIZED
    assert status[weeks[0]] != dg.AssetPartitionStatus.MATERIALIZED
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    message = failure.step_failure_data.error.message  # not retryable: the step's own Failure, not a retry's
    cause = f"week {weeks[0]}: {mirror.url}/{names[0]} is not a turnstile file: the server sent 'text/html"
    assert "1 of 2 week(s) failed: " + cause in message  # the first attempt's cause, the page's start included
    assert "an HTML page (starts '<!DOCTYPE html>" in message
    assert weeks[1] not in message
    assert f"retry: 1 week(s) that failed permanently in an earlier attempt are not tried again ({weeks[0]})" in said
