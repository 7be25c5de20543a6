"""Helpers of the ``./mta`` wrapper: check the weeks a command asks for, and summarize a run.

Run by ``./mta`` with the checkout's venv (never imported by the package):

    python scripts/mta_cli.py check-weeks ARGS...   exit 2 with our message for a bad week
    python scripts/mta_cli.py check-settings        exit 2 with one line if the code location would not load
    python scripts/mta_cli.py summary [--since EPOCH_SECONDS] [--run-id ID]
    python scripts/mta_cli.py nth-week FIRST COUNT  the COUNT-th week from FIRST
    python scripts/mta_cli.py free-port             a free loopback port
    python scripts/mta_cli.py wait-port PORT        wait until something listens there

The summary reads only what the run recorded in the instance (materializations and
check evaluations), not how the assets compute it, so it follows the assets as they change.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import sys
import time

ASSETS = ("turnstile_csv", "turnstile_csv_gz", "turnstile_readings")
READINGS = "turnstile_readings"
UI_URL_DEFAULT = "http://127.0.0.1:3000"


# -- weeks ---------------------------------------------------------------------


def week_arguments(args: list[str]) -> list[tuple[str, str]]:
    """(option, value) of every ``--partition``/``--partition-range`` in a command line."""
    found = []
    for index, arg in enumerate(args):
        for option in ("--partition", "--partition-range"):
            if arg == option and index + 1 < len(args):
                found.append((option, args[index + 1]))
            elif arg.startswith(option + "="):
                found.append((option, arg.split("=", 1)[1]))
    return found


def check_week(key: str, now: dt.datetime | None = None) -> None:
    """Raise ValueError, in our words, for a key that names no published week of ours."""
    from mta_assets.mta.calendar import FIRST_WEEK, KEY_FORMAT, require_published, week_start
    from mta_assets.settings import LAST_WEEK_ENV_VAR, last_week_from_env

    try:
        start = week_start(key)
    except ValueError as error:
        try:
            day = dt.datetime.strptime(key, KEY_FORMAT).date()
        except ValueError:
            if ".." in key:
                raise ValueError(f"{error}; a range is --partition-range FIRST...LAST (three dots)") from None
            raise error from None
        saturday = day - dt.timedelta(days=(day.weekday() - 5) % 7)
        raise ValueError(f"{error} (the week holding {key} is {saturday:{KEY_FORMAT}})") from None
    if key < FIRST_WEEK:
        raise ValueError(f"week {key} is before the first week, {FIRST_WEEK} (MTA's first file)")
    require_published(start.strftime(KEY_FORMAT), now)
    last_week = last_week_from_env()
    if last_week is not None and key > last_week:
        raise ValueError(f"week {key} is after the declared last week, {LAST_WEEK_ENV_VAR}={last_week}")


def check_weeks(args: list[str], now: dt.datetime | None = None) -> list[str]:
    """Problems with the weeks a command line asks for (empty when all are fine)."""
    problems = []
    for option, value in week_arguments(args):
        if option == "--partition-range":
            first, sep, last = value.partition("...")
            if not sep or not first or not last:
                problems.append(f"--partition-range {value!r}: write FIRST...LAST, e.g. 2023-12-30...2024-01-20")
                continue
            keys = [first, last]
        else:
            keys = [value]
        for key in keys:
            try:
                check_week(key, now)
            except ValueError as error:
                problems.append(f"{option} {value}: {error}")
        if option == "--partition-range" and len(keys) == 2 and not problems and keys[0] > keys[1]:
            problems.append(f"--partition-range {value}: the first week is after the last")
    return problems


# -- settings --------------------------------------------------------------------

LOAD_MODULE = "mta_assets.definitions"


def check_settings() -> list[str]:
    """Why the code location would not load with this environment, as one line (empty when it loads).

    It loads the code location as Dagster does, so every setting checked at load time is
    checked here, by the code that checks it. Settings are refused with a ValueError (our
    SettingError, or pydantic's ValidationError) whose message names the variable and what
    it may be: that message is the whole answer, on one line, not Dagster's traceback of
    the load. Anything else is a bug, and its traceback is what helps: it is not caught.
    """
    import importlib
    import warnings

    warnings.filterwarnings("ignore")  # preview/beta notices say nothing about the settings
    try:
        importlib.import_module(LOAD_MODULE)
    except ValueError as error:
        message = " ".join(str(error).split()) or type(error).__name__
        return [message]
    return []


# -- summary -------------------------------------------------------------------


def _value(entry):
    return getattr(entry, "value", entry)


def _first_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[0] if lines else ""


def _number(value) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def object_uri(metadata: dict, week: str | None) -> str:
    """Where a week's object is: ``uri`` (or ``lake_uri``), else its row of a range run's ``objects`` table."""
    if metadata.get("uri") or metadata.get("lake_uri"):
        return str(metadata.get("uri") or metadata.get("lake_uri"))
    for row in str(metadata.get("objects") or "").splitlines():
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if week is not None and len(cells) >= 2 and cells[0] == week:
            return cells[1]
    return "(no uri recorded)"


def find_run(instance, run_id: str | None, since: float | None):
    import dagster as dg

    if run_id:
        return instance.get_run_by_id(run_id)
    filters = None
    if since is not None:
        filters = dg.RunsFilter(created_after=dt.datetime.fromtimestamp(since, tz=dt.timezone.utc))
    runs = instance.get_runs(filters=filters, limit=1)
    return runs[0] if runs else None


def check_lines(checks: list, indent: str) -> list[str]:
    if not checks:
        return []
    failed = [check for check in checks if not check.passed]
    lines = [f"{indent}checks: {len(checks) - len(failed)} passed, {len(failed)} failed"]
    for check in failed:
        severity = getattr(check.severity, "value", check.severity)
        lines.append(f"{indent}  failed ({severity}): {check.check_name}: {_first_line(check.description)}")
    return lines


def summarize(instance, run) -> str:
    """Lines that tell a newcomer what the run did, per week, from its recorded events."""
    import dagster as dg

    weeks: dict[str, dict] = {}

    run_level: list = []  # check results recorded without a partition (range runs)

    def week_entry(partition: str | None) -> dict:
        return weeks.setdefault(partition, {"objects": {}, "checks": [], "metadata": {}})

    for record in instance.get_records_for_run(
        run_id=run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records:
        materialization = record.event_log_entry.dagster_event.event_specific_data.materialization
        entry = week_entry(materialization.partition)
        name = materialization.asset_key.to_user_string()
        metadata = {key: _value(value) for key, value in materialization.metadata.items()}
        if name.startswith("warehouse/"):
            # dbt's models live in the warehouse file, not the lake: counted, not listed.
            entry["models"] = entry.get("models", 0) + 1
            if "turnstile_over_official" in metadata:
                entry["ratio"] = metadata["turnstile_over_official"]
        else:
            entry["objects"][name] = object_uri(metadata, materialization.partition)
        if name == READINGS:
            entry["metadata"] = metadata

    for record in instance.get_records_for_run(
        run_id=run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        partition = getattr(evaluation, "partition", None)
        if partition is None:
            run_level.append(evaluation)
        else:
            week_entry(partition)["checks"].append(evaluation)

    tags = dict(run.tags)
    asked = tags.get("dagster/partition") or (
        f"{tags.get('dagster/asset_partition_range_start')}...{tags.get('dagster/asset_partition_range_end')}"
        if tags.get("dagster/asset_partition_range_start")
        else "no partition"
    )
    status = run.status.value
    lines = [f"Run {run.run_id[:8]} {status}: weeks {asked}" if "..." in asked else f"Run {run.run_id[:8]} {status}: week {asked}"]

    for week in sorted(weeks, key=lambda key: key or ""):
        entry = weeks[week]
        metadata = entry["metadata"]
        lines.append(f"week {week}" if week else "(no partition)")
        if metadata:
            rows = metadata.get("dagster/row_count", "?")
            rejects = metadata.get("rejects", metadata.get("rejected", "?"))
            duplicates = metadata.get("duplicates_removed", "?")
            lines.append(
                f"  rows {_number(rows)}, rejects {_number(rejects)}, duplicates removed {_number(duplicates)}"
            )
        lines += check_lines(entry["checks"], "  ")
        for name in ASSETS:
            if name in entry["objects"]:
                lines.append(f"  {name:<20} {entry['objects'][name]}")
        for name in sorted(set(entry["objects"]) - set(ASSETS)):
            lines.append(f"  {name:<20} {entry['objects'][name]}")
        if entry.get("models"):
            where = os.environ.get("MTA_WAREHOUSE") or "data/warehouse.duckdb"
            lines.append(f"  {'warehouse':<20} {entry['models']} dbt models in {where}")
        if entry.get("ratio") is not None:
            # The figure a reader of ridership_daily must know (docs/data.md "Official ridership").
            lines.append(
                f"  turnstile entries / MTA's daily estimate: {float(entry['ratio']):.2f} "
                "(real weeks of 2024: about 0.57, docs/data.md)"
            )

    if run_level:
        lines.append("run-level check results (no partition)")
        lines += check_lines(run_level, "  ")

    if status != "SUCCESS":
        for record in instance.get_records_for_run(
            run_id=run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
        ).records:
            event = record.event_log_entry.dagster_event
            error = event.event_specific_data.error if event.event_specific_data else None
            while error is not None and getattr(error, "cause", None) is not None:
                error = error.cause
            message = _first_line(error.message) if error is not None else ""
            lines.append(f"failed step {event.step_key}: {message}")
        if not weeks:
            lines.append("nothing was materialized")

    ui_url = os.environ.get("MTA_UI_URL", UI_URL_DEFAULT).rstrip("/")
    lines.append(f"instance: {os.environ.get('DAGSTER_HOME', '(temporary)')}  (./mta dev shows it: {ui_url}/runs/{run.run_id})")
    return "\n".join(lines)


# -- ports -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_port(port: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "check-weeks":
        # The settings first, once: the weeks are judged against MTA_LAST_WEEK, and a wrong
        # setting is its own one line, not a week's problem (repeated for each end of a range).
        from mta_assets.settings import SettingError, load

        try:
            load()
        except SettingError as error:
            for line in str(error).splitlines():
                print(f"./mta: {line}", file=sys.stderr)
            return 2
        problems = check_weeks(rest)
        for problem in problems:
            print(f"./mta: {problem}", file=sys.stderr)
        return 2 if problems else 0
    if command == "check-settings":
        problems = check_settings()
        for problem in problems:
            print(f"./mta: {problem}", file=sys.stderr)
        return 2 if problems else 0
    if command == "summary":
        parser = argparse.ArgumentParser(prog="./mta summary")
        parser.add_argument("--run-id")
        parser.add_argument("--since", type=float, help="only runs created after this Unix time")
        options = parser.parse_args(rest)
        import warnings

        warnings.filterwarnings("ignore")  # preview/beta notices say nothing about the run
        import dagster as dg

        with dg.DagsterInstance.get() as instance:
            run = find_run(instance, options.run_id, options.since)
            if run is None:
                print(f"./mta: no run found in {os.environ.get('DAGSTER_HOME')}", file=sys.stderr)
                return 1
            print(summarize(instance, run))
            return 0 if run.status.value == "SUCCESS" else 1
    if command == "nth-week":
        # The COUNT-th week from FIRST (1 = FIRST itself): the last week a mirror serves.
        first, count = rest[0], int(rest[1])
        print((dt.date.fromisoformat(first) + dt.timedelta(days=7 * (count - 1))).isoformat())
        return 0
    if command == "free-port":
        print(free_port())
        return 0
    if command == "wait-port":
        return 0 if wait_port(int(rest[0])) else 1
    print(f"./mta: unknown helper {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
