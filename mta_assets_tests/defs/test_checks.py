"""The Dagster side of the checks: specs from ``validate.CHECKS`` and outcomes as check results."""

from __future__ import annotations

import dagster as dg

from mta_assets.defs.turnstile import checks
from mta_assets.mta.validate import CHECKS, Outcome


def test_one_partitioned_spec_per_check_its_blocking_said_in_its_description():
    specs = checks.readings_check_specs
    assert [spec.name for spec in specs] == list(CHECKS)
    for spec in specs:
        description, blocking = CHECKS[spec.name]
        assert spec.asset_key == dg.AssetKey("turnstile_readings")
        # The week's gate, not Dagster's (defs/weeks.py week_check_spec): no "emitted no result" warnings.
        assert spec.blocking is False
        assert spec.description.startswith(description)
        assert ("Blocking: a week that fails it is not committed." in spec.description) == blocking
        assert spec.partitions_def is not None
    assert checks.BLOCKING == {name for name, (_, blocking) in CHECKS.items() if blocking}


def test_a_failed_blocking_outcome_is_an_error_with_its_metadata():
    outcome = Outcome(
        name="readings_inside_week", passed=False, blocking=True,
        description="week 2023-12-30 (turnstile_240106.txt): 1 readings fall outside",
        metadata={"week": "2023-12-30", "source_file": "turnstile_240106.txt", "readings_outside": 1,
                  "first_reading": None, "wrong_types": {"a": "b"}, "examples_md": "| a |\n|---|\n| 1 |"},
    )
    result = checks.to_check_result(outcome)
    assert isinstance(result, dg.AssetCheckResult)
    assert (result.check_name, result.passed, result.severity) == ("readings_inside_week", False, dg.AssetCheckSeverity.ERROR)
    assert result.description == outcome.description
    assert result.metadata["examples_md"] == dg.MetadataValue.md("| a |\n|---|\n| 1 |")
    assert result.metadata["wrong_types"] == dg.MetadataValue.json({"a": "b"})
    assert result.metadata["first_reading"] == dg.MetadataValue.null()
    assert result.metadata["readings_outside"].value == 1
    assert result.metadata["week"].value == "2023-12-30"


def test_a_failed_non_blocking_outcome_is_a_warning_and_a_pass_is_a_pass():
    warn = checks.to_check_result(Outcome("row_count_plausible", False, False, "week …: 60 rows", {"row_count": 60}))
    assert (warn.passed, warn.severity) == (False, dg.AssetCheckSeverity.WARN)
    ok = checks.to_check_result(Outcome("row_count_plausible", True, False, "week …: 100 rows", {}))
    assert ok.passed


def test_no_check_recorded_week_by_week_is_a_dagster_blocking_spec():
    """WeekReport's checks gate their week themselves; a Dagster-blocking spec would only warn on every run."""
    from mta_assets.defs.official.checks import BLOCKING as OFFICIAL_BLOCKING
    from mta_assets.defs.official.checks import hourly_check_specs
    from mta_assets.defs.ridership.checks import BLOCKING as RIDERSHIP_BLOCKING
    from mta_assets.defs.ridership.checks import ridership_check_specs
    from mta_assets.defs.turnstile.partitions import weekly_partitions

    specs = [*checks.readings_check_specs, *ridership_check_specs, *hourly_check_specs(weekly_partitions)]
    assert [spec.name for spec in specs if spec.blocking] == []
    blocking = {*checks.BLOCKING, *RIDERSHIP_BLOCKING, *OFFICIAL_BLOCKING}
    assert {spec.name for spec in specs if "Blocking:" in spec.description} == blocking
