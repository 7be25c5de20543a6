"""The benchmark's smoke mode end to end: real dagster CLI runs, the plain script,
a real mirror and gcp-storage-emulator, on two small synthetic weeks.

Asserts the report is complete and both sides stored the same data; never asserts
on timings (the numbers depend on the machine).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

RUNS = ("ours_one_week", "plain_one_week", "ours_backfill", "plain_backfill")
IMPORTS = ("import_dagster", "import_definitions")


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("bench")
    out = folder / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "mta_assets_bench", "--smoke", "--out", str(out), "--workdir", str(folder)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,  # a hung benchmark fails this test instead of holding CI to its limit
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    report = json.loads(out.read_text())
    report["stdout"] = completed.stdout
    return report


def test_every_measured_quantity_is_a_positive_number(smoke_report: dict) -> None:
    results = smoke_report["results"]
    # Our backfill with ridership and the warehouse too, timed apart from the plain script's work.
    assert set(results) == set(RUNS) | set(IMPORTS) | {
        "ours_backfill_everything", "ours_backfill_paired", "ours_one_week_everything"
    }
    assert results["ours_backfill_everything"]["median_seconds"] > 0
    # Its cost is taken against a plain backfill run beside it, pair by pair.
    paired = smoke_report["paired_ratios"]["ours_backfill_everything"]
    expected = results["ours_backfill_everything"]["seconds"][0] / results["ours_backfill_paired"]["seconds"][0]
    assert paired == pytest.approx(expected, abs=0.002)  # the report rounds seconds to ms
    for name in RUNS:
        run = results[name]
        assert len(run["seconds"]) == len(run["peak_rss_mb"]) == smoke_report["repeats"] == 1
        assert run["median_seconds"] > 0 and all(s > 0 for s in run["seconds"])
        assert run["max_peak_rss_mb"] > 0 and all(mb > 0 for mb in run["peak_rss_mb"])
    for name in IMPORTS:
        assert results[name]["median_seconds"] > 0
    assert all(smoke_report["ratios"][name] > 0 for name in ("one_week", "backfill", "import"))
    assert smoke_report["servers"]["emulator_peak_rss_mb"] > 0
    assert smoke_report["servers"]["mirror_peak_rss_mb"] > 0
    assert smoke_report["ours_peak_rss_mb"] == max(results["ours_one_week"]["max_peak_rss_mb"], results["ours_backfill"]["max_peak_rss_mb"])
    # The whole lineage (ridership, complexes, dbt) has a memory bound of its own, over 1 week and the range.
    assert smoke_report["lineage_peak_rss_mb"] == max(
        results["ours_one_week_everything"]["max_peak_rss_mb"], results["ours_backfill_everything"]["max_peak_rss_mb"]
    )
    assert set(smoke_report["targets"]) == {
        "one_week_ratio", "backfill_ratio", "year_ratio", "import_ratio", "peak_rss_mb", "lineage_peak_rss_mb", "peak_disk_mb"
    }
    assert smoke_report["targets"].pop("year_ratio") == "not run"  # the smoke run skips the 52-week year
    # Small weeks and one repeat: the smoke run never claims a target met or missed.
    assert set(smoke_report["targets"].values()) == {"not comparable (smoke)"}
    assert smoke_report["smoke"] is True
    assert smoke_report["ours_peak_disk_mb"] > 0


def test_report_describes_the_weeks_and_the_machine(smoke_report: dict) -> None:
    assert smoke_report["weeks_count"] == 2
    assert smoke_report["weeks"] == {
        "2023-12-30": "synthetic (5,000 readings)",
        "2024-01-06": "synthetic (5,000 readings)",
    }
    machine = smoke_report["machine"]
    assert machine["cores"] >= 1 and machine["ram_gib"] > 0
    assert machine["cpu"] and machine["python"] and machine["dagster"]
    assert "-m mta_assets_bench --smoke --out " in smoke_report["command"]


def test_plain_script_and_assets_store_the_same_data(smoke_report: dict) -> None:
    outputs = smoke_report["agreement"]["outputs"]
    assert set(outputs) == set(RUNS)
    assert list(outputs["ours_one_week"]) == ["2023-12-30"]
    assert list(outputs["ours_backfill"]) == ["2023-12-30", "2024-01-06"]
    for name in RUNS:
        for week, found in outputs[name].items():
            assert found["csv_gz_matches_source"] is True, (name, week)
            assert found["csv_gz_bytes"] > 0
    for scenario in ("one_week", "backfill"):
        ours, plain = outputs[f"ours_{scenario}"], outputs[f"plain_{scenario}"]
        assert ours.keys() == plain.keys()
        for week in ours:
            # A synthetic week of 5,000 readings holds no exact duplicates: every reading is a row.
            assert ours[week]["parquet_rows"] == plain[week]["parquet_rows"] == 5_000
    assert smoke_report["agreement"]["all_agree"] is True


def test_prints_one_table_with_every_row(smoke_report: dict) -> None:
    table = smoke_report["stdout"]
    assert table == smoke_report["table"] + "\n"
    for label in (
        "(a) one week", "(c1) one week, plain script", "(b) 2-week backfill", "(c2) 2 weeks, plain script",
        "`import mta_assets.definitions`", "`import dagster`", "gcp-storage-emulator", "mirror",
        "one week (a)/(c1)", "backfill (b)/(c2)", "import definitions / dagster", "peak memory, turnstile assets",
        "peak memory, whole lineage", "(r1) one week, whole lineage",
        "Outputs agree", "Machine:", "Command: `", "these ratios are not comparable",
    ):
        assert label in table, label
    assert "missed" not in table and "| met |" not in table


def test_counts_what_each_of_our_runs_recorded(smoke_report: dict) -> None:
    events = smoke_report["events"]
    assert set(events) == {
        "ours_one_week", "ours_backfill", "ours_backfill_paired", "ours_backfill_everything", "ours_one_week_everything"
    }
    one, two = events["ours_one_week"], events["ours_backfill"]
    # Each week records each of its assets and checks once, alone or in a range.
    assert one["ASSET_MATERIALIZATION"] > 0 and one["ASSET_CHECK_EVALUATION"] > 0
    assert two["ASSET_MATERIALIZATION"] == 2 * one["ASSET_MATERIALIZATION"]
    assert two["ASSET_CHECK_EVALUATION"] == 2 * one["ASSET_CHECK_EVALUATION"]
    assert events["ours_backfill_paired"] == two  # the same run again records the same
    # The whole lineage records the turnstile weeks' events and those of ridership and dbt.
    assert events["ours_backfill_everything"]["ASSET_MATERIALIZATION"] > two["ASSET_MATERIALIZATION"]
    assert smoke_report["record_ms"] > 0
    assert "| run (first repeat) | planned | materializations | check results | asset events |" in smoke_report["table"]
    assert "| (b) | " in smoke_report["table"]
