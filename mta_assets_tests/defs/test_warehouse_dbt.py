"""The warehouse through dbt (dagster-dbt) on the 7 real weeks and MTA's official ridership.

The lake is built once per module from the real files (``warehouse_lake.py``); each test
has its own DuckDB file. Real DuckDB, real dbt, a real second process holding the file.
"""

import csv
import datetime as dt
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest
from dagster_dbt import DbtCliResource

from mta_assets.defs.resources import Lake
from mta_assets.defs.warehouse.assets import SYSTEM_DAILY, warehouse_models
from mta_assets.defs.warehouse.metrics import week_metrics
from mta_assets.defs.warehouse.project import dbt_executable, prepared_project, write_run_file
from mta_assets.defs.warehouse.resources import DuckDBWarehouse
from mta_assets.storage.commit import commit_week
from mta_assets.storage.duckdb_file import WarehouseBusy
from mta_devtools.synthetic import consecutive_weeks
from mta_assets_tests.warehouse_lake import PARQUET, build_official, build_turnstile_weeks, ridership_dir

WEEKS = consecutive_weeks("2023-12-30", 7)
UPSTREAM = ["turnstile_readings", "stations", "ridership_daily", "official_hourly", "official_daily", "station_complexes"]
# The lake assets, as specs: these tests run the warehouse alone on a lake built beforehand.
ASSETS = [warehouse_models, *(dg.AssetSpec(key) for key in UPSTREAM)]


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    root = tmp_path_factory.mktemp("warehouse-lake")
    lake = Lake(url=str(root / "lake"))
    build_turnstile_weeks(lake, WEEKS, root)
    build_official(lake, root)
    return lake


def materialize(
    lake: Lake, database: Path, first: str, last: str | None = None, deadline_s: float = 30.0, instance=None
):
    return dg.materialize(
        ASSETS,
        resources={
            "lake": lake,
            "duckdb_warehouse": DuckDBWarehouse(database=str(database), lock_deadline_s=deadline_s),
            "dbt": DbtCliResource(project_dir=prepared_project(), dbt_executable=dbt_executable()),
        },
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last or first},
    )


def failure_text(result) -> str:
    return "\n".join(str(event.event_specific_data.error) for event in result.all_events if event.is_step_failure)


def snapshot(database: Path) -> dict[str, tuple]:
    """Each table's row count and an order-free sum of its rows' hashes: what 'changes nothing' compares."""
    with duckdb.connect(str(database), read_only=True) as connection:
        tables = [name for (name,) in connection.execute(
            "select table_name from information_schema.tables where table_type = 'BASE TABLE' order by 1"
        ).fetchall()]
        return {
            table: connection.execute(f"select count(*), sum(hash(t)::hugeint) from {table} t").fetchone()
            for table in tables
        }


@pytest.fixture(scope="module")
def built(lake, tmp_path_factory) -> tuple[Path, object]:
    database = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    result = materialize(lake, database, WEEKS[0], WEEKS[-1])
    assert result.success, failure_text(result)
    return database, result


def test_seven_real_weeks_build_with_every_dbt_test_green(built, lake):
    database, result = built
    checks = result.get_asset_check_evaluations()
    assert len(checks) >= 35
    assert [c.check_name for c in checks if not c.passed] == []
    materialized = {(e.asset_key.to_user_string(), e.partition) for e in result.get_asset_materialization_events()}
    assert {("warehouse/ridership_daily", week) for week in WEEKS} <= materialized

    # Each week's numbers for the Plots tab, on system_daily's materialization of that week.
    plotted = {
        e.partition: e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key == SYSTEM_DAILY
    }
    assert set(plotted) == set(WEEKS)
    assert 0.45 < plotted["2024-01-13"]["turnstile_over_official"].value < 0.65
    assert 1_000_000 < plotted["2024-01-13"]["mean_daily_entries"].value < 2_500_000
    assert 0 <= plotted["2024-01-13"]["intervals_dropped_share"].value < 0.001

    # The lake's own numbers, summed here without the warehouse: every row arrived.
    root = Path(lake.url)
    parts = [pq.read_table(path) for path in sorted((root / "turnstile" / "ridership").rglob("*.parquet"))]
    entries_by_day: dict[dt.date, int] = {}
    for table in parts:
        for day, entries in zip(table["date"].to_pylist(), table["entries"].to_pylist()):
            entries_by_day[day] = entries_by_day.get(day, 0) + entries
    readings_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in (root / "turnstile" / "readings").rglob("*.parquet"))
    official = {}
    with open(ridership_dir() / "daily" / "vxuj-8kew_MTA_Daily_Ridership_2020-03-01_to_2024-11-14.csv") as handle:
        for row in csv.DictReader(handle):
            official[dt.datetime.strptime(row["Date"], "%m/%d/%Y").date()] = int(row["Subways: Total Estimated Ridership"])

    with duckdb.connect(str(database), read_only=True) as connection:
        system = connection.execute(
            "select date, entries_turnstile, entries_official, turnstile_over_official, turnstile_complete "
            "from system_daily order by date"
        ).fetchall()
        assert connection.execute("select count(*) from readings").fetchone()[0] == readings_rows
        assert connection.execute("select count(*) from stations where station is null").fetchone()[0] == 0
    assert {day for day, *_ in system} == set(entries_by_day)
    complete = [row for row in system if row[4]]
    # The first Saturday lacks the week before it; the last Friday ends in a week not loaded.
    assert [row[0] for row in system if not row[4]] == [dt.date(2023, 12, 30), dt.date(2024, 2, 16)]
    for day, turnstile, entries_official, ratio, _ in complete:
        assert turnstile == entries_by_day[day]
        assert entries_official == official[day]
        assert ratio == pytest.approx(entries_by_day[day] / official[day])
        assert 0.45 < ratio < 0.65, day


def test_a_week_s_plotted_figures_do_not_depend_on_whether_its_neighbours_were_built(built, lake, tmp_path):
    """A week's figures are recorded once, when it is built: the same with its neighbours loaded or not.

    2024-01-13 among all seven weeks has a complete Saturday and Friday; built alone (as the
    first week of a warehouse, or by the schedule before the next week exists) it has neither.
    """
    week = "2024-01-13"

    def figures(result) -> dict:
        (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == SYSTEM_DAILY and e.partition == week]
        return {name: value.value for name, value in event.materialization.metadata.items()
                if name in ("mean_daily_entries", "turnstile_over_official", "intervals_dropped_share", "figures_days")}

    _, among_all = built
    alone = materialize(lake, tmp_path / "warehouse.duckdb", week)
    assert alone.success, failure_text(alone)
    assert figures(alone) == figures(among_all)

    # Saturday to Thursday of the week's own ridership file, summed here without the warehouse.
    table = pq.read_table(lake.fetch(lake.key_for("ridership", week, ".parquet"), tmp_path / "fetched"))
    by_day: dict[dt.date, int] = {}
    for day, entries in zip(table["date"].to_pylist(), table["entries"].to_pylist()):
        by_day[day] = by_day.get(day, 0) + entries
    saturday = dt.date.fromisoformat(week)
    full = [by_day[saturday + dt.timedelta(days=n)] for n in range(6)]
    assert figures(alone)["mean_daily_entries"] == pytest.approx(sum(full) / 6, abs=1e-5)
    assert figures(alone)["figures_days"].startswith("Sat 2024-01-13 to Thu 2024-01-18")


def test_readme_queries_and_the_complex_series(built):
    database, _ = built
    with duckdb.connect(str(database), read_only=True) as connection:
        busiest = connection.execute(
            "SELECT station, linename, sum(entries) AS entries FROM ridership_daily "
            "WHERE date >= DATE '2024-01-01' AND date < DATE '2024-02-01' GROUP BY ALL ORDER BY entries DESC LIMIT 10"
        ).fetchall()
        mart = connection.execute(
            "select station, linename, entries from busiest_stations_monthly "
            "where month = date '2024-01-01' order by rank_in_month, station limit 10"
        ).fetchall()
        profile = connection.execute(
            "select day, mean_entries from station_weekday_profile where station = '34 ST-HERALD SQ' "
            "and station_id like 'R022 %BMT' order by iso_day"
        ).fetchall()
        complex_day = connection.execute(
            "select count(*), count(entries_turnstile), median(turnstile_over_official) from ridership_complex_daily "
            "where date = date '2024-02-01' and source = 'official'"
        ).fetchone()
        turnstile_only = connection.execute(
            "select count(*) from ridership_complex_daily where source = 'turnstile' and entries_official is not null"
        ).fetchone()[0]
    assert len(busiest) == 10 and busiest[0][2] > 500_000
    assert [(s, line) for s, line, _ in mart[:3]] == [(s, line) for s, line, _ in busiest[:3]]
    assert [day for day, _ in profile] == ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    weekdays, weekend = [m for _, m in profile[:5]], [m for _, m in profile[5:]]
    assert min(weekdays) > max(weekend)
    # 2024-02-01 has MTA's hourly data: the complexes with both sources, about half counted.
    rows, with_turnstile, median_ratio = complex_day
    assert rows > 400 and with_turnstile > 350
    assert 0.45 < median_ratio < 0.7
    assert turnstile_only == 0


def test_loading_a_week_again_changes_nothing(built, lake):
    database, _ = built
    before = snapshot(database)
    result = materialize(lake, database, "2024-01-13")
    assert result.success, failure_text(result)
    assert snapshot(database) == before


HOLD = """
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_reader_holding_the_file_fails_the_load_within_its_deadline_and_the_next_run_loads(lake, tmp_path):
    database = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(database), "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        instance = dg.DagsterInstance.ephemeral()
        started = time.monotonic()
        result = materialize(lake, database, "2024-01-13", deadline_s=4, instance=instance)
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert not result.success
    text = failure_text(result)
    assert str(database) in text and f"PID {holder.pid}" in text and "deadline 4 s" in text
    waits = [e.user_message for e in instance.all_logs(result.run_id) if "waiting" in e.user_message]
    assert waits and f"PID {holder.pid}" in waits[0]
    # The wait the step reports stays within the deadline; the wall clock, which includes
    # building the job and the run's events on a possibly busy machine, only loosely.
    waited = int(re.search(r"still held after (\d+) s", text)[1])
    assert waited <= 5 and elapsed < 60, (waited, elapsed)

    result = materialize(lake, database, "2024-01-13", deadline_s=4)
    assert result.success, failure_text(result)
    with duckdb.connect(str(database), read_only=True) as connection:
        weeks = connection.execute("select distinct week from fct_ridership_daily").fetchall()
    assert weeks == [(dt.date(2024, 1, 13),)]


def test_a_permanent_error_fails_at_once(lake, tmp_path):
    database = tmp_path / "warehouse.duckdb"
    database.mkdir()  # a folder where the file should be: no wait can fix that
    started = time.monotonic()
    result = materialize(lake, database, "2024-01-13", deadline_s=60)
    assert not result.success
    assert time.monotonic() - started < 15
    assert str(database) in failure_text(result)


RUN = """
import sys
from pathlib import Path
from mta_assets.defs.resources import Lake
from mta_assets_tests.defs.test_warehouse_dbt import failure_text, materialize
result = materialize(Lake(url=sys.argv[1]), Path(sys.argv[2]), sys.argv[3], deadline_s=120)
print(failure_text(result))
sys.exit(0 if result.success else 1)
"""


def test_two_runs_loading_different_weeks_at_once_both_land(lake, tmp_path):
    """Two run processes (as two Dagster runs would be) on one file, outside the pool: each waits its turn."""
    database = tmp_path / "warehouse.duckdb"
    runs = [
        subprocess.Popen([sys.executable, "-c", RUN, lake.url, str(database), week], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
        for week in ("2024-01-06", "2024-01-20")
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], "\n=====\n".join(o[-3000:] for o in outputs)
    with duckdb.connect(str(database), read_only=True) as connection:
        weeks = connection.execute("select distinct week from fct_ridership_daily order by week").fetchall()
    assert weeks == [(dt.date(2024, 1, 6),), (dt.date(2024, 1, 20),)]


def test_the_week_figures_wait_for_a_file_another_run_took_and_give_up_at_the_deadline(tmp_path):
    """After its build, a run reads system_daily's figures while the next run's dbt may hold the file."""
    database = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(database)) as connection:
        connection.execute(
            "create table system_daily as select date '2024-01-06' + cast(i as integer) as date, 1000.0 * (i + 1) as entries_turnstile, "
            "2000.0 * (i + 1) as entries_official, i as intervals_dropped, 10 as intervals "
            "from range(7) t(i)"
        )
    # Saturday to Thursday: the Friday (7000 entries, 6 dropped) is not in the figures.
    expected = {"2024-01-06": {"mean_daily_entries": 3500.0, "turnstile_over_official": 0.5, "intervals_dropped_share": 0.25,
                               "figures_days": "Sat 2024-01-06 to Thu 2024-01-11, the week's full days "
                               "(its Friday ends in the next week's file)"}}

    def hold(seconds: str) -> subprocess.Popen:
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(database), seconds], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "held"
        return holder

    waits: list[str] = []
    holder = hold("2")  # lets go within the deadline: the figures are read then
    try:
        assert week_metrics(database, ["2024-01-06"], 30, lambda error, _: waits.append(error.holder)) == expected
    finally:
        holder.kill()
        holder.wait()
    assert waits and f"PID {holder.pid}" in waits[0]

    holder = hold("60")  # holds past the deadline: the error names the file and the holder
    try:
        with pytest.raises(WarehouseBusy, match=f"PID {holder.pid}.*still held after [012] s .deadline 1 s") as raised:
            week_metrics(database, ["2024-01-06"], 1)
    finally:
        holder.kill()
        holder.wait()
    assert str(database) in str(raised.value)


def test_a_corrupted_lake_object_fails_its_week_naming_it(lake, tmp_path):
    week = "2024-01-20"
    broken = Lake(url=str(tmp_path / "lake"))
    source = Path(lake.url)
    for dataset in ("readings", "stations", "ridership"):
        key = lake.key_for(dataset, week, ".parquet")
        (Path(broken.url) / key).parent.mkdir(parents=True, exist_ok=True)
        (Path(broken.url) / key).write_bytes((source / key).read_bytes())
    key = broken.key_for("ridership", week, ".parquet")
    target = Path(broken.url) / key
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    database = tmp_path / "warehouse.duckdb"

    result = materialize(broken, database, week)
    assert not result.success
    assert f"{key} is not readable Parquet" in failure_text(result) or str(target) in failure_text(result)
    assert not database.exists() or snapshot(database) == {}


def test_bigquery_target_compiles_offline(tmp_path):
    """dbt compile against BigQuery with a dummy project and token: no network is touched."""
    env = {
        "PATH": str(Path(sys.executable).parent),
        "HOME": str(tmp_path),
        "MTA_DBT_TARGET": "bigquery",
        "MTA_BIGQUERY_METHOD": "oauth-secrets",
        "MTA_BIGQUERY_TOKEN": "dummy",
        "MTA_BIGQUERY_PROJECT": "dummy-project",
        "MTA_LAKE_URL": "gs://mta-bucket/lake",
    }
    project = prepared_project().project_dir
    target = tmp_path / "target"
    command = [dbt_executable(), "compile", "--no-populate-cache", "--project-dir", str(project),
               "--profiles-dir", str(project), "--target-path", str(target)]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=180)
    compiled = target / "compiled" / "mta" / "models" / "core"
    assert "`dummy-project`.`mta`.`lake_ridership`" in (compiled / "fct_ridership_daily.sql").read_text()
    assert "logical_and(" in (compiled / "system_daily.sql").read_text()
    ddl = subprocess.run(command + ["--inline", "{{ create_lake_external_tables() }}"], env=env, check=True,
                         capture_output=True, text=True, timeout=180).stdout
    assert ("create or replace external table `dummy-project.mta.lake_ridership` options (format = 'PARQUET', "
            "uris = ['gs://mta-bucket/lake/turnstile/ridership/*.parquet'])") in ddl


def test_a_week_of_ridership_written_upstream_requests_that_week_of_the_warehouse():
    """weekly_eager on every partition, not only the latest; the official data may be absent."""
    from mta_assets.defs.turnstile.partitions import weekly_partitions

    weekly = [dg.AssetSpec(key, partitions_def=weekly_partitions) for key in UPSTREAM[:4]]
    defs = dg.Definitions(
        assets=[warehouse_models, *weekly, *(dg.AssetSpec(key) for key in UPSTREAM[4:])],
        resources={"lake": Lake(), "duckdb_warehouse": DuckDBWarehouse(), "dbt": DbtCliResource(project_dir=prepared_project(), dbt_executable=dbt_executable())},
    )
    instance = dg.DagsterInstance.ephemeral()
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    for key in ("turnstile_readings", "stations", "ridership_daily"):
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition="2024-01-13"))

    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    fact = dg.AssetKey(["warehouse", "fct_ridership_daily"])
    readings = dg.AssetKey(["warehouse", "readings"])
    assert result.get_requested_partitions(fact) == {"2024-01-13"}
    assert result.get_requested_partitions(readings) == {"2024-01-13"}


def test_the_code_location_never_imports_dbt():
    """dbt runs as a command from its own environment (dbt/requirements.txt): loading the
    definitions imports none of it, so no Dagster process pays its import."""
    # dbt-core's modules (the checkout's dbt/ folder alone can make "dbt" a namespace package).
    script = ("import sys, mta_assets.definitions; "
              "print(sorted(m for m in sys.modules if m.startswith(('dbt.', 'dbt_common', 'dbt_adapters'))))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert Path(dbt_executable()).is_file(), "make setup builds dbt's environment in .venv/dbt"


def test_a_dbt_command_logs_no_warning_about_an_in_process_adapter(tmp_path, caplog):
    """dagster-dbt would warn, with a traceback, on every command that dbt-core is not importable here."""
    import importlib.util

    assert importlib.util.find_spec("dbt.version") is None  # no dbt-core here: the case dagster-dbt warns about
    invocation = DbtCliResource(project_dir=prepared_project(), dbt_executable=dbt_executable()).cli(
        ["parse", "--quiet"], target_path=tmp_path / "target"
    )
    invocation.wait()
    assert invocation.is_successful()
    assert (tmp_path / "target" / "manifest.json").is_file()
    assert [r.getMessage() for r in caplog.records if "dbt adapter" in r.getMessage()] == []


def _compile_inline(sql: str, tmp_path: Path, run_file: bool, lake_url: str) -> str:
    """dbt's compiled SQL for ``sql``, run as Dagster runs dbt (its own target folder, the warehouse var)."""
    project = prepared_project().project_dir
    target = tmp_path / ("run" if run_file else "by-hand")
    target.mkdir(exist_ok=True)
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "MTA_LAKE_URL": lake_url,
           "DBT_TARGET_PATH": str(target), "DBT_LOG_PATH": str(target)}
    command = [dbt_executable(), "compile", "--quiet", "--project-dir", str(project), "--profiles-dir", str(project),
               "--vars", json.dumps({"warehouse": str(tmp_path / "warehouse.duckdb")}), "--inline", sql]
    return subprocess.run(command, env=env, check=True, capture_output=True, text=True, timeout=180).stdout


def test_a_run_s_weeks_and_files_reach_dbt_in_its_target_folder_whatever_the_range(tmp_path):
    """The whole archive in one run: its file names are far beyond what one command-line
    argument may hold (128 KiB), so they go in the invocation's mta_run.json, read by the
    macros when dbt executes; by hand, without that file, dbt reads every file of the lake."""
    weeks = consecutive_weeks("2010-05-01", 720)
    folder = "/srv/mta/lake/turnstile/{}/2010/2010-05-01/20261207T120000Z-0123abcd"
    files = {dataset: [f"{folder.format(dataset)}/turnstile_{n:06d}.parquet" for n in range(len(weeks))]
             for dataset in ("readings", "stations", "ridership")}
    files["readings"].append(f"{folder.format('readings')}/o'hare.parquet")
    files["official_hourly"] = []
    folder = folder.format("readings")
    (tmp_path / "run").mkdir()
    write_run_file(tmp_path / "run", weeks, files)
    assert len(json.dumps(files)) > 128 * 1024
    sql = "select * from {{ lake_relation('readings') }} where {{ in_run_weeks('week') }} -- {{ lake_relation('official_hourly') }}"

    compiled = _compile_inline(sql, tmp_path, run_file=True, lake_url="/srv/mta/lake")
    listed = compiled.split("read_parquet([", 1)[1].split("]", 1)[0]
    assert listed.count(".parquet'") == len(weeks) + 1
    assert f"'{folder}/turnstile_000000.parquet'" in listed and "o''hare.parquet" in listed
    in_weeks = compiled.split("where week in (", 1)[1].split(")", 1)[0]
    assert in_weeks.count("date '") == 720 and "date '2010-05-01'" in in_weeks and f"date '{weeks[-1]}'" in in_weeks
    assert "where false" in compiled  # a dataset without objects for these weeks: an empty relation


def test_dbt_by_hand_reads_each_week_s_current_objects_of_the_lake(tmp_path):
    """Without Dagster's run file dbt reads the whole local lake: each week where its manifest points
    (not the replaced generation kept beside it), and the objects of a lake written before manifests."""
    lake = Lake(url=str(tmp_path / "lake"))
    weeks = WEEKS[:2]
    build_turnstile_weeks(lake, weeks, tmp_path)  # the fixed keys of a lake written before manifests
    build_official(lake, tmp_path)
    legacy = pq.read_metadata(lake.root / lake.key_for("readings", weeks[1], ".parquet")).num_rows
    table = pq.read_table(lake.root / lake.key_for("readings", weeks[1], ".parquet"))
    for rows in (1000, 500):  # the week committed twice: the first generation stays, replaced, for readers in flight
        staged = tmp_path / "turnstile_240113.parquet"
        pq.write_table(table.slice(0, rows), staged)
        commit_week(lake.client, "turnstile", weeks[1], {"readings": (staged, staged.name, PARQUET)}, owner="test", wait_s=10)
    generations = list((lake.root / "turnstile" / "readings").rglob("*.parquet"))
    assert len(generations) == 3 and legacy > 1000  # week 1's legacy object, week 2's two generations

    project = prepared_project().project_dir
    database = tmp_path / "warehouse.duckdb"
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "MTA_LAKE_URL": str(lake.root),
           "DBT_TARGET_PATH": str(tmp_path / "target"), "DBT_LOG_PATH": str(tmp_path / "target")}
    command = [dbt_executable(), "build", "--quiet", "--project-dir", str(project), "--profiles-dir", str(project),
               "--vars", json.dumps({"warehouse": str(database)})]
    built = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-2000:]
    with duckdb.connect(str(database), read_only=True) as connection:
        counts = dict(connection.execute("select cast(week as varchar), count(*) from readings group by 1").fetchall())
        assert counts == {weeks[0]: pq.read_metadata(lake.root / lake.key_for("readings", weeks[0], ".parquet")).num_rows,
                          weeks[1]: 500}
        assert connection.execute("select count(*) from fct_official_complex_daily").fetchone()[0] > 0


def test_dbt_for_dagster_answers_the_version_at_once_and_runs_dbt_for_the_rest():
    """dagster-dbt asks `dbt --version` before each step's first command; dbt-core would import
    its whole CLI and ask pypi.org (dbt/dbt-for-dagster). The answer is the installed dbt-core."""
    wrapper = Path(dbt_executable())
    assert wrapper.name == "dbt-for-dagster", "make setup installs dbt/dbt-for-dagster beside dbt"
    installed = [path.name.removesuffix(".dist-info").split("-")[1] for path in wrapper.parent.parent.glob("lib/python*/site-packages/dbt_core-*.dist-info")]
    version = subprocess.run([str(wrapper), "--version"], check=True, capture_output=True, text=True, timeout=60)
    # dbt's own answer goes on with the latest release on PyPI and the adapters ("Plugins:").
    assert version.stdout.splitlines() == ["Core:", f"  - installed: {installed[0]}"]
    passed_on = subprocess.run([str(wrapper), "--help"], check=True, capture_output=True, text=True, timeout=120)
    assert passed_on.stdout.startswith("Usage: dbt")


def test_a_step_that_stops_while_dbt_builds_stops_dbt_and_frees_the_file(lake, tmp_path):
    """A Terminate while Dagster records a result closes the step's generator: dbt must not outlive it."""
    database = tmp_path / "warehouse.duckdb"
    context = dg.build_asset_context(
        partition_key_range=dg.PartitionKeyRange(WEEKS[0], WEEKS[-1]),
        resources={
            "lake": lake,
            "duckdb_warehouse": DuckDBWarehouse(database=str(database)),
            "dbt": DbtCliResource(project_dir=prepared_project(), dbt_executable=dbt_executable()),
        },
    )
    results = warehouse_models(context)
    first = next(results)  # dbt has the file and is building the other nodes
    assert isinstance(first, dg.MaterializeResult | dg.AssetCheckResult)
    results.close()
    # dbt is gone: the file opens for writing at once, and no fetch folder is left beside it.
    duckdb.connect(str(database)).close()
    assert sorted(path.name for path in tmp_path.iterdir() if "fetch" in path.name) == []


class _AnotherRunRewritesRidership(DbtCliResource):
    """dbt, with another run rewriting one week's ridership in the lake just after the
    warehouse step fetched its objects and before dbt reads them (once: ``marker``)."""

    lake_url: str
    week: str
    rewritten: str  # the new ridership table, a local Parquet file
    marker: str

    def cli(self, args, **kwargs):
        if not Path(self.marker).exists():
            Path(self.marker).touch()
            lake = Lake(url=self.lake_url)
            lake.put_file(Path(self.rewritten), lake.key_for("ridership", self.week, ".parquet"), PARQUET)
        return super().cli(args, **kwargs)


def test_a_ridership_week_another_run_rewrites_while_dbt_reads_it_is_built_again(lake, gcs_lake, tmp_path):
    import pyarrow.compute as pc

    from mta_assets.defs.turnstile.tables import write_parquet

    week = "2024-01-20"
    for dataset in ("readings", "stations", "ridership"):  # the week on a GCS lake: dbt reads fetched copies
        copy = Path(lake.fetch(lake.key_for(dataset, week, ".parquet"), tmp_path / "copy"))
        gcs_lake.put_file(copy, gcs_lake.key_for(dataset, week, ".parquet"), PARQUET)
    rows = pq.read_table(Path(lake.url) / lake.key_for("ridership", week, ".parquet"))
    rows = rows.set_column(rows.schema.get_field_index("entries"), "entries", pc.multiply(rows["entries"], 2))
    write_parquet(rows, tmp_path / "rewritten.parquet")
    database = tmp_path / "warehouse.duckdb"
    dbt = _AnotherRunRewritesRidership(
        project_dir=prepared_project(), dbt_executable=dbt_executable(), lake_url=gcs_lake.url, week=week,
        rewritten=str(tmp_path / "rewritten.parquet"), marker=str(tmp_path / "rewritten.done"),
    )
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        ASSETS,
        resources={"lake": gcs_lake, "duckdb_warehouse": DuckDBWarehouse(database=str(database)), "dbt": dbt},
        instance=instance, partition_key=week, raise_on_error=False,
    )

    assert result.success, failure_text(result)
    with duckdb.connect(str(database), read_only=True) as connection:
        (entries,) = connection.execute("select sum(entries) from fct_ridership_daily").fetchone()
    assert entries == pc.sum(rows["entries"]).as_py()  # the rewritten week, not the one dbt read first
    said = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(f"ridership {week}: replaced by another run while dbt read them" in line for line in said)


def test_a_week_with_only_mta_data_builds_the_models_that_read_it_and_no_turnstile_model(tmp_path):
    """After the turnstile files ended (early 2024) MTA's data is a week's only source; before, it may land first."""
    from mta_assets.defs.turnstile.partitions import weekly_partitions
    from mta_assets_tests.warehouse_lake import HOURLY_DAY

    lake = Lake(url=str(tmp_path / "lake"))
    build_official(lake, tmp_path)  # MTA's hourly week, daily totals and crosswalk; no turnstile object at all
    week = (HOURLY_DAY - dt.timedelta(days=(HOURLY_DAY.weekday() + 2) % 7)).isoformat()
    weekly = [dg.AssetSpec(key, partitions_def=weekly_partitions) for key in UPSTREAM[:4]]
    resources = {
        "lake": lake,
        "duckdb_warehouse": DuckDBWarehouse(database=str(tmp_path / "warehouse.duckdb")),
        "dbt": DbtCliResource(project_dir=prepared_project(), dbt_executable=dbt_executable()),
    }
    defs = dg.Definitions(assets=[warehouse_models, *weekly, *(dg.AssetSpec(key) for key in UPSTREAM[4:])], resources=resources)
    instance = dg.DagsterInstance.ephemeral()
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="official_hourly", partition=week))

    # What automation asks for once MTA's week is in: the model that reads it, not the turnstile ones.
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    official = dg.AssetKey(["warehouse", "fct_official_complex_daily"])
    requested = {key for key in warehouse_models.keys if week in tick.get_requested_partitions(key)}
    assert requested == {official}
    result = dg.materialize(
        [warehouse_models, *weekly], selection=[official], partition_key=week, resources=resources,
        instance=instance, raise_on_error=False,
    )
    assert result.success, failure_text(result)
    assert [m.partition for m in result.asset_materializations_for_node("warehouse_models")] == [week]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as connection:
        weeks = connection.execute("select distinct cast(week as varchar) from fct_official_complex_daily").fetchall()
        assert weeks == [(week,)]
        assert connection.execute("select count(*) from readings").fetchone() == (0,)

    # A model that reads the turnstile week still needs it, and says which week lacks what.
    readings = dg.materialize(
        [warehouse_models, *weekly], selection=[dg.AssetKey(["warehouse", "readings"])], partition_key=week,
        resources=resources, instance=instance, raise_on_error=False,
    )
    assert not readings.success
    assert f"week {week}: no turnstile_readings object in the lake" in failure_text(readings)
