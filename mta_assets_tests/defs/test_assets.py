"""One week through the turnstile step: a good week end to end, and bad files that change nothing."""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from mta_assets.defs.resources import Lake, LakeIOManager, MTASource
from mta_assets.defs.turnstile.assets import turnstile_weeks
from mta_assets.storage.commit import current_week
from mta_devtools.synthetic import week_bytes
from mta_assets_tests.samples import offline_station_key, rebuild_full_week
from mta_assets_tests.lake_objects import week_object_key, week_stat

WEEK = "2023-12-30"
NAME = "turnstile_240106.txt"
OBJECTS = [("csv_gz", ".csv.gz"), ("readings", ".parquet")]


def resources(url: str, lake: Lake) -> dict:
    return {
        "mta_source": MTASource(base_url=url, retries=0, read_timeout_s=10),
        "lake": lake,
        "lake_io_manager": LakeIOManager(lake=lake),
        "station_key": offline_station_key(),
    }


def materialize(url: str, lake: Lake, instance=None, week: str = WEEK, selection=None, config=None):
    return dg.materialize(
        [turnstile_weeks],
        partition_key=week,
        resources=resources(url, lake),
        instance=instance or dg.DagsterInstance.ephemeral(),
        selection=selection,
        run_config=config,
        raise_on_error=False,
    )


def week_objects(lake: Lake, week: str = WEEK) -> dict[str, object]:
    return {dataset: lake.stat(lake.key_for(dataset, week, extension)) for dataset, extension in OBJECTS}


def failure_message(result) -> str:
    (event,) = result.get_step_failure_events()
    return event.step_failure_data.error.message


def check_evaluations(instance: dg.DagsterInstance, run_id: str) -> dict[str, dg.AssetCheckEvaluation]:
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    return {r.dagster_event.event_specific_data.check_name: r.dagster_event.event_specific_data for r in records}


class OneFileServer:
    """A loopback server for one file whose bytes and headers a test controls.

    ``stated_length=False`` sends no Content-Length and ``cut_at`` closes the connection
    after that many bytes: the body looks complete to a client that trusts the close.
    """

    def __init__(self, body: bytes, stated_length: bool = True, cut_at: int | None = None):
        self.body, self.stated_length, self.cut_at = body, stated_length, cut_at
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                if owner.stated_length:
                    self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body[: owner.cut_at])

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OneFileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def test_a_real_week_end_to_end_on_gcs(mirror, mirror_root, gcs_lake):
    served = rebuild_full_week("240106.csv.gz", mirror_root)
    instance = dg.DagsterInstance.ephemeral()

    result = materialize(mirror.url, gcs_lake, instance)

    assert result.success, failure_message(result)
    assert gzip.decompress(gcs_lake.read_bytes(week_object_key(gcs_lake, "csv_gz", WEEK))) == served.read_bytes()
    # The gzip object is the published file's durable copy: no uncompressed .txt by default.
    assert gcs_lake.list_keys("turnstile/raw/") == []
    table = pq.read_table(gcs_lake.fetch(week_object_key(gcs_lake, "readings", WEEK), mirror_root / "fetched"))
    readings = result.asset_materializations_for_node("turnstile_weeks")
    by_asset = {m.asset_key.to_user_string(): m.metadata for m in readings}
    assert table.num_rows == by_asset["turnstile_readings"]["dagster/row_count"].value
    assert by_asset["turnstile_readings"]["rejected"].value == 0
    assert by_asset["turnstile_csv"]["sha256"].value
    assert by_asset["turnstile_csv"]["stored_as"].value == "gzip"
    assert by_asset["turnstile_csv_gz"]["compression_ratio"].value > 8
    assert by_asset["turnstile_csv_gz"]["crc32c"].value == week_stat(gcs_lake, "csv_gz", WEEK).crc32c
    assert all(e.passed for e in check_evaluations(instance, result.run_id).values())


def test_materializing_a_week_twice_gives_the_same_objects_and_rows(mirror, synthetic_week, any_lake):
    synthetic_week(WEEK, readings=3000)
    instance = dg.DagsterInstance.ephemeral()
    first = materialize(mirror.url, any_lake, instance)
    assert first.success, failure_message(first)
    before = week_objects(any_lake)
    second = materialize(mirror.url, any_lake, instance)
    assert second.success
    assert week_objects(any_lake) == before
    metadata = {m.asset_key.to_user_string(): m.metadata for m in second.asset_materializations_for_node("turnstile_weeks")}
    assert metadata["turnstile_csv_gz"]["already_stored"].value is True


def test_the_raw_text_is_stored_only_when_asked(mirror, synthetic_week, local_lake):
    served = synthetic_week(WEEK, readings=500)
    config = {"ops": {"turnstile_weeks": {"config": {"store_raw_text": True}}}}
    assert materialize(mirror.url, local_lake, config=config).success
    assert local_lake.read_bytes(week_object_key(local_lake, "raw", WEEK)) == served.read_bytes()


def test_the_table_alone_is_rebuilt_from_the_lakes_gzip_object(mirror, synthetic_week, local_lake):
    synthetic_week(WEEK, readings=800)
    assert materialize(mirror.url, local_lake).success
    gz_before = week_stat(local_lake, "csv_gz", WEEK)
    local_lake.delete(week_object_key(local_lake, "readings", WEEK))
    mirror.clear_requests()

    result = materialize(mirror.url, local_lake, selection=["turnstile_readings"])

    assert result.success, failure_message(result)
    assert mirror.requests == []  # read from the lake, not from MTA
    assert week_stat(local_lake, "readings", WEEK) is not None
    assert week_stat(local_lake, "csv_gz", WEEK) == gz_before


def _week_in_lake(lake: Lake, folder: Path) -> tuple[bytes, int]:
    """(the published bytes of the week's gzip object, the rows of its table), as a reader sees them."""
    published = gzip.decompress(lake.read_bytes(week_object_key(lake, "csv_gz", WEEK)))
    table = pq.read_table(lake.fetch(week_object_key(lake, "readings", WEEK), folder / "fetched"))
    return published, table.num_rows


def test_a_republished_week_is_not_committed_by_its_gzip_alone(mirror, synthetic_week, local_lake, tmp_path):
    """Readers never see one week's objects from two downloads (issue 18, item 4)."""
    first = synthetic_week(WEEK, readings=1000, seed=1).read_bytes()
    instance = dg.DagsterInstance.ephemeral()
    assert materialize(mirror.url, local_lake, instance).success
    # The same bytes again: the gzip alone is fine, nothing changes.
    assert materialize(mirror.url, local_lake, instance, selection=["turnstile_csv_gz"]).success
    assert _week_in_lake(local_lake, tmp_path / "a") == (first, 1000)
    manifest_before = current_week(local_lake, "turnstile", WEEK)

    second = synthetic_week(WEEK, readings=1500, seed=2).read_bytes()  # MTA publishes the week again
    result = materialize(mirror.url, local_lake, instance, selection=["turnstile_csv_gz"])

    assert not result.success
    message = failure_message(result)
    assert f"week {WEEK}: {NAME} from {mirror.url}/{NAME} is not the file the week's turnstile_readings" in message
    assert "materialize the turnstile group for this week (select turnstile_readings too)" in message
    # The week is still the first download, whole; Dagster recorded no new gzip either.
    assert current_week(local_lake, "turnstile", WEEK) == manifest_before
    assert _week_in_lake(local_lake, tmp_path / "b") == (first, 1000)
    assert result.asset_materializations_for_node("turnstile_weeks") == []

    assert materialize(mirror.url, local_lake, instance).success  # the group: both from the new download
    assert _week_in_lake(local_lake, tmp_path / "c") == (second, 1500)


def _garbage_tail(good: bytes) -> bytes:
    lines = good.split(b"\n")
    return b"\n".join(lines[:1000]) + b"\n" + b"\xff\x00garbage,,,not,a,reading\n" * 5000


@pytest.mark.parametrize("bad", ["garbage_tail", "wrong_week", "cut_without_length"])
def test_a_bad_file_changes_none_of_the_weeks_objects(tmp_path, any_lake, bad):
    good = week_bytes(WEEK, readings=4000, seed=1)
    with OneFileServer(good) as server:
        assert materialize(server.url, any_lake).success
        before = week_objects(any_lake)
        if bad == "garbage_tail":
            server.body = _garbage_tail(good)
        elif bad == "wrong_week":
            server.body = week_bytes("2024-02-03", readings=4000, seed=1)  # another week's file under this name
        else:
            server.body, server.stated_length, server.cut_at = good, False, len(good) // 2 + 17

        result = materialize(server.url, any_lake)

    assert not result.success
    message = failure_message(result)
    assert f"week {WEEK}: {NAME} from {server.url}/{NAME} failed blocking checks" in message
    cause = {"garbage_tail": "reject_rate", "wrong_week": "readings_inside_week", "cut_without_length": "file_complete"}
    assert cause[bad] in message
    assert week_objects(any_lake) == before
    quarantined = [key for key in any_lake.list_keys("turnstile/quarantine/") if f"/{WEEK}/" in key]
    assert len(quarantined) == 1 and quarantined[0].endswith(f"{NAME}.gz")
    assert any_lake.uri_for(quarantined[0]) in message


def test_a_missing_week_names_week_and_url_and_stores_nothing(mirror, local_lake):
    result = materialize(mirror.url, local_lake)
    assert not result.success
    assert f"week {WEEK}: {mirror.url}/{NAME} is not published (HTTP 404)" in failure_message(result)
    assert not Path(local_lake.root).exists() or not any(Path(local_lake.root).rglob("*.parquet"))


def test_the_wide_years_take_their_station_names_from_the_station_key_resource(mirror, synthetic_week, local_lake, tmp_path):
    """One station key for the whole pipeline: the turnstile step reads the `station_key`
    resource for a 2010-2014 week, and never touches it for an 11-column week."""
    import csv

    wide, recent = "2013-01-26", WEEK
    served = synthetic_week(wide, readings=600)
    synthetic_week(recent, readings=600)
    pairs = sorted({tuple(row[:2]) for row in csv.reader(served.read_text().splitlines()) if len(row) > 2})
    key = tmp_path / "key.csv"
    key.write_text("Remote,Booth,Station,Line Name,Division\n" + "".join(f"{u},{c},STATION {u}/{c},1,IRT\n" for c, u in pairs))
    res = {**resources(mirror.url, local_lake), "station_key": offline_station_key(key)}
    assert dg.materialize([turnstile_weeks], partition_key=wide, resources=res, instance=dg.DagsterInstance.ephemeral()).success
    table = pq.read_table(local_lake.fetch(week_object_key(local_lake, "readings", wide), tmp_path / "f"))
    names = {(row["ca"], row["unit"]): row["station"] for row in table.select(["ca", "unit", "station"]).to_pylist()}
    assert names == {(c, u): f"STATION {u}/{c}" for c, u in pairs}

    # An 11-column week names its own stations: a key that cannot be read is never read.
    missing = {**resources(mirror.url, local_lake), "station_key": offline_station_key(tmp_path / "absent.csv")}
    assert dg.materialize([turnstile_weeks], partition_key=recent, resources=missing, instance=dg.DagsterInstance.ephemeral()).success
