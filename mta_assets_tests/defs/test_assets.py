import gzip
import io
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from mta_assets.batches import WeekBatch
from mta_assets.defs.io_manager import LakeIOManager
from mta_assets.defs.turnstile.assets import (
    turnstile_csv,
    turnstile_csv_gz,
    turnstile_readings,
)
from mta_assets.defs.turnstile.checks import readings_check_specs
from mta_assets.storage.http import MTASource
from mta_assets.storage.lake import Lake
from mta_assets_tests.samples import rebuild_full_week

WEEK = "2023-12-30"
NAME = "turnstile_240106.txt"
ASSETS = [turnstile_csv, turnstile_csv_gz, turnstile_readings]
CHECK_NAMES = {spec.name for spec in readings_check_specs}


def resources(mirror, lake: Lake) -> dict:
    return {
        "mta_source": MTASource(base_url=mirror.url, retries=0, read_timeout_s=10),
        "lake": lake,
        "lake_io_manager": LakeIOManager(lake=lake),
    }


def lake_bytes(lake: Lake, dataset: str, extension: str, week: str = WEEK) -> bytes:
    return lake.read_bytes(lake.key_for(dataset, week, extension))


def check_evaluations(instance: dg.DagsterInstance, run_id: str) -> dict[str, dg.AssetCheckEvaluation]:
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    return {r.dagster_event.event_specific_data.check_name: r.dagster_event.event_specific_data for r in records}


def test_real_week_end_to_end_on_gcs(mirror, mirror_root, gcs_lake):
    served = rebuild_full_week("240106.csv.gz", mirror_root)
    instance = dg.DagsterInstance.ephemeral()

    result = dg.materialize(ASSETS, partition_key=WEEK, resources=resources(mirror, gcs_lake), instance=instance)

    assert result.success
    assert lake_bytes(gcs_lake, "raw", ".txt") == served.read_bytes()
    assert gzip.decompress(lake_bytes(gcs_lake, "csv_gz", ".csv.gz")) == served.read_bytes()
    table = pq.read_table(io.BytesIO(gcs_lake.read_bytes(gcs_lake.key_for("readings", WEEK, ".parquet"))))
    readings = result.asset_materializations_for_node("turnstile_readings")[0].metadata
    duplicates = readings["duplicates_removed"].value
    assert table.num_rows == 250_816 - duplicates == readings["dagster/row_count"].value
    assert readings["rejected"].value == 0
    assert str(table.schema.field("entries").type) == "int64"

    evaluations = check_evaluations(instance, result.run_id)
    assert set(evaluations) == CHECK_NAMES
    assert all(e.passed for e in evaluations.values())
    assert {e.partition for e in evaluations.values()} == {WEEK}

    raw = result.asset_materializations_for_node("turnstile_csv")[0].metadata
    assert raw["layout"].value == "eleven_column"
    assert raw["lines"].value == 250_817
    assert raw["lake_uri"].value == gcs_lake.uri_for(gcs_lake.key_for("raw", WEEK, ".txt"))
    compressed = result.asset_materializations_for_node("turnstile_csv_gz")[0].metadata
    assert compressed["bytes_in"].value == served.stat().st_size
    assert compressed["compression_ratio"].value > 8
    assert compressed["crc32c"].value == gcs_lake.stat(gcs_lake.key_for("csv_gz", WEEK, ".csv.gz")).crc32c


def test_materializing_a_week_twice_gives_the_same_objects_and_rows(mirror, synthetic_week, any_lake):
    synthetic_week(WEEK, readings=3000)
    instance = dg.DagsterInstance.ephemeral()
    outputs = []
    for _ in range(2):
        assert dg.materialize(ASSETS, partition_key=WEEK, resources=resources(mirror, any_lake), instance=instance).success
        outputs.append([any_lake.stat(any_lake.key_for(d, WEEK, e)) for d, e in
                        [("raw", ".txt"), ("csv_gz", ".csv.gz"), ("readings", ".parquet")]])
    assert outputs[0] == outputs[1]
    assert pq.read_table(io.BytesIO(any_lake.read_bytes(any_lake.key_for("readings", WEEK, ".parquet")))).num_rows > 2900


def test_assets_called_directly(mirror, synthetic_week, local_lake):
    """The asset functions are plain functions: call them with a built context."""
    served = synthetic_week(WEEK, readings=1000)
    context = dg.build_asset_context(partition_key=WEEK)
    result = turnstile_csv(context, config=_range_config(),
                           mta_source=MTASource(base_url=mirror.url), lake=local_lake)
    batch = result.value
    assert isinstance(batch, WeekBatch) and not batch.failures
    assert batch.files[WEEK].path.read_bytes() == served.read_bytes()

    from mta_assets.defs.turnstile.assets import CompressionConfig

    compressed = turnstile_csv_gz(
        dg.build_asset_context(partition_key=WEEK), config=CompressionConfig(gzip_level=9), lake=local_lake,
        turnstile_csv={WEEK: batch.files[WEEK].path},
    ).value
    assert gzip.decompress(compressed.files[WEEK].path.read_bytes()) == served.read_bytes()
    assert compressed.metadata[WEEK]["gzip_level"] == 9


def _range_config():
    from mta_assets.defs.turnstile.assets import RangeConfig

    return RangeConfig(max_workers=1)


def test_a_blocking_check_failure_stops_downstream_and_keeps_the_last_good_table(mirror, mirror_root, synthetic_week, local_lake):
    served = synthetic_week(WEEK, readings=3000)
    ran = []

    @dg.asset(partitions_def=turnstile_readings.partitions_def, deps=[turnstile_readings])
    def station_report(context: dg.AssetExecutionContext) -> None:
        ran.append(context.partition_key)

    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([*ASSETS, station_report], partition_key=WEEK, resources=resources(mirror, local_lake), instance=instance).success
    assert ran == [WEEK]
    table_key = local_lake.key_for("readings", WEEK, ".parquet")
    good_table = local_lake.read_bytes(table_key)

    # Re-published with a corrupt counter on 1% of the lines: over the 0.1% reject threshold.
    lines = served.read_bytes().split(b"\n")
    for index in range(1, len(lines) - 1, 100):
        fields = lines[index].split(b",")
        fields[9] = b"12X4"
        lines[index] = b",".join(fields)
    served.write_bytes(b"\n".join(lines))

    result = dg.materialize([*ASSETS, station_report], partition_key=WEEK, resources=resources(mirror, local_lake),
                            instance=instance, raise_on_error=False)

    assert not result.success
    assert ran == [WEEK], "the downstream asset must not run after a blocking check failed"
    evaluation = check_evaluations(instance, result.run_id)["reject_rate_under_threshold"]
    assert not evaluation.passed
    assert evaluation.metadata["rejected"].value == len(range(1, len(lines) - 1, 100))
    assert evaluation.metadata["rejected_samples"].value[0]["line"] == 2
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    assert f"week {WEEK}: blocking checks failed: reject_rate_under_threshold" in failure
    assert local_lake.read_bytes(table_key) == good_table


def test_a_future_week_fails_clearly(mirror, local_lake):
    future = "2030-01-05"
    # Dagster itself refuses a partition that does not exist yet...
    with pytest.raises(dg.DagsterUnknownPartitionError, match=future):
        dg.materialize([turnstile_csv], partition_key=future, resources=resources(mirror, local_lake))
    # ...and the asset refuses it too, should it be asked some other way.
    with pytest.raises(dg.Failure, match=rf"week {future} is not published yet: turnstile_300112.txt appears on Saturday 2030-01-12"):
        turnstile_csv(dg.build_asset_context(partition_key=future), config=_range_config(),
                      mta_source=MTASource(base_url=mirror.url), lake=local_lake)
    assert mirror.requests == []


def test_a_missing_week_names_week_and_url_and_stores_nothing(mirror, local_lake):
    result = dg.materialize([turnstile_csv], partition_key=WEEK, resources=resources(mirror, local_lake),
                            raise_on_error=False)
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert f"week {WEEK}: {mirror.url}/{NAME} is not published (HTTP 404)" in message
    assert not Path(local_lake.root).exists() or not any(Path(local_lake.root).rglob("*.txt"))
