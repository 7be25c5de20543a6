"""A newcomer's first hour: the README's commands, typed as written, on a fresh clone.

The checkout's committed HEAD is cloned into a temporary folder (CI clones too), and
the README's offline commands run there with nothing activated. To stay fast the clone
reuses the venv running these tests through ``MTA_VENV`` (``make`` and ``./mta`` then use
it as is and install nothing); ``./mta`` puts the clone's own code first on the path, so
the clone's code is what runs. Assertions are on the summary the commands print and on
the instance the README names (``./.dagster_home`` of the clone), read back with Dagster.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from difflib import unified_diff
from pathlib import Path
from queue import Empty, Queue

import dagster as dg
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
VENV = Path(sys.prefix)
READINGS = 5000  # a small synthetic week: 5,000 readings, no exact duplicates
RUN_LINE = re.compile(r"^Run ([0-9a-f]{8}) (\w+): weeks? (\S+)$", re.M)
CHECKS_LINE = re.compile(r"^  checks: (\d+) passed, (\d+) failed$", re.M)
COMMAND_TIMEOUT_S = 300
# The README's sample of `make run` output sits between these markers; the make-run test
# writes it (MTA_UPDATE_README=1) or compares it, so it cannot go stale.
SAMPLE_START, SAMPLE_END = "<!-- make-run:start -->", "<!-- make-run:end -->"
# Read when the module is collected: the autouse fixture hides MTA_* settings from the tests.
UPDATE_README = os.environ.get("MTA_UPDATE_README") == "1"
REFRESH = "MTA_UPDATE_README=1 ./mta python -m pytest mta_assets_tests/test_first_hour.py -k make_run -p no:cacheprovider"


def readme_sample(stdout: str, clone: Path) -> str:
    """What `make run` printed from its source line on, as the README shows it: paths, ports and run ids normalised."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("source: "))
    lake = next(i for i, line in enumerate(lines) if line.startswith("lake: "))
    # The runs' own progress (Dagster's INFO lines, dbt's log) goes between: elided, it changes.
    summary = next(i for i, line in enumerate(lines) if RUN_LINE.match(line))
    text = "\n".join([*lines[start : lake + 1], "…", *lines[summary:]]).rstrip()
    text = text.replace(str(clone), "…")
    text = re.sub(r"127\.0\.0\.1:(?!3000\b)\d+", "127.0.0.1:<port>", text)  # the mirror's free port, not the UI's
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<run-id>", text)
    text = re.sub(r"^Run [0-9a-f]{8} ", "Run <run-id> ", text, flags=re.M)
    text = re.sub(r"/\d{8}T\d{6}Z-[0-9a-f]{8}/", "/<generation>/", text)  # the week's commit (storage/commit.py)
    return f"```text\n{text}\n```"


def check_readme_sample(sample: str) -> None:
    """The README's block between the markers is ``sample``; MTA_UPDATE_README=1 writes it there instead."""
    text = README.read_text()
    found = re.search(rf"{re.escape(SAMPLE_START)}\n(.*?){re.escape(SAMPLE_END)}", text, re.S)
    assert found, f"README.md lost its markers {SAMPLE_START} ... {SAMPLE_END}"
    shown = found.group(1).rstrip("\n")
    if UPDATE_README:
        README.write_text(text[: found.start(1)] + sample + "\n" + text[found.end(1) :])
        return
    diff = "\n".join(unified_diff(shown.splitlines(), sample.splitlines(), "README.md", "make run", lineterm=""))
    assert shown == sample, f"the README's make run sample is stale:\n{diff}\nrefresh it with: {REFRESH}"


def newcomer_environment(**extra: str) -> dict[str, str]:
    """A shell as a newcomer has it: no project settings, no DAGSTER_HOME, nothing activated."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MTA_", "DAGSTER_", "PYTEST_"))
        and key not in {"STORAGE_EMULATOR_HOST", "PYTHONPATH", "VIRTUAL_ENV", "GOOGLE_APPLICATION_CREDENTIALS"}
        and key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}  # when the suite itself runs under make
    }
    # The venv running these tests is not on PATH for a newcomer.
    env["PATH"] = os.pathsep.join(
        entry for entry in env.get("PATH", "").split(os.pathsep) if Path(entry) != VENV / "bin"
    )
    env["MTA_VENV"] = str(VENV)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def shell(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run one README line as a user's shell would."""
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
    )


def readme_text() -> str:
    return README.read_text()


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Path:
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout to clone")
    if not (VENV / "bin" / "dagster").exists():
        pytest.skip(f"the tests do not run from a venv with dagster ({VENV}); run them with make test")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(REPO_ROOT), str(clone)], check=True)
    subprocess.run(["git", "checkout", "--quiet", head], cwd=clone, check=True)
    return clone


def the_instance(clone: Path) -> dg.DagsterInstance:
    """The instance the README names: ./.dagster_home of the checkout, the one make dev shows."""
    home = clone / ".dagster_home"
    assert (home / "dagster.yaml").is_file(), f"no instance at {home}"
    return dg.DagsterInstance.from_config(str(home))


def materialized_weeks(instance: dg.DagsterInstance) -> set[str]:
    return set(instance.get_materialized_partitions(dg.AssetKey("turnstile_readings")))


def assert_no_debug_flood(output: str) -> None:
    assert " - DEBUG - " not in output, output[-3000:]


def test_make_run_on_a_fresh_clone(fresh_clone: Path) -> None:
    text = readme_text()
    assert "make run " in text and "`READINGS=5000`" in text and "`DAGSTER_HOME=./.dagster_home`" in text

    result = shell(f"make run READINGS={READINGS}", fresh_clone, newcomer_environment())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert_no_debug_flood(output)
    assert "latest_week_on_time" not in output  # no judgement of a week nobody asked for

    [(short_id, status, week)] = RUN_LINE.findall(result.stdout)
    assert (status, week) == ("SUCCESS", "2023-12-30")
    assert f"  rows {READINGS:,}, rejects 0, duplicates removed 0" in result.stdout
    # The week's checks first, then the warehouse's dbt tests (recorded without a partition).
    (passed, failed), *warehouse = CHECKS_LINE.findall(result.stdout)
    assert int(passed) >= 6 and failed == "0"
    assert all(int(count) > 0 for count, _ in warehouse) and "failed (ERROR)" not in result.stdout
    lake = fresh_clone / "data" / "lake"
    for asset, relative in [
        # The published file's durable copy is its gzip object (README "How the data flows").
        ("turnstile_csv", "turnstile/csv_gz/2023/2023-12-30/{}/turnstile_240106.csv.gz"),
        ("turnstile_csv_gz", "turnstile/csv_gz/2023/2023-12-30/{}/turnstile_240106.csv.gz"),
        ("turnstile_readings", "turnstile/readings/2023/2023-12-30/{}/turnstile_240106.parquet"),
    ]:
        # Each object sits in its commit's generation folder (storage/commit.py).
        pattern = re.escape(str(lake / relative)).replace(r"\{\}", "{}").format(r"(\d{8}T\d{6}Z-[0-9a-f]{8})")
        found = re.search(rf"^  {asset} +({pattern})$", result.stdout, re.M)
        assert found, asset
        assert Path(found.group(1)).stat().st_size > 0
    assert f"instance: {fresh_clone / '.dagster_home'}" in result.stdout

    # The run is in the instance make dev shows, with the week materialized.
    with the_instance(fresh_clone) as instance:
        [run] = instance.get_runs()
        assert run.run_id.startswith(short_id) and run.status == dg.DagsterRunStatus.SUCCESS
        assert materialized_weeks(instance) == {"2023-12-30"}
    # The mirror that make run started is gone with it.
    assert "stops with this command" in result.stdout
    port = int(re.search(r"source: http://127\.0\.0\.1:(\d+)", result.stdout).group(1))
    assert not port_open(port)
    # What the README shows is this run's output.
    check_readme_sample(readme_sample(result.stdout, fresh_clone))


def test_readme_offline_commands_on_a_fresh_clone(fresh_clone: Path) -> None:
    text = readme_text()
    synthetic = "./mta python -m mta_devtools.synthetic --out data/mirror --weeks-from 2023-12-30 --count 2 --readings 5000"
    mirror = "./mta python -m mta_devtools.mirror data/mirror --port 8765 &"
    materialize = "MTA_SOURCE_URL=http://127.0.0.1:8765 ./mta materialize 2023-12-30...2024-01-06"
    for line in (synthetic, mirror, materialize):
        assert line in text, f"the README no longer shows: {line}"
    env = newcomer_environment()
    port = free_port()  # 8765 may be taken by a parallel test; everything else as typed

    made = shell(synthetic, fresh_clone, env)
    assert made.returncode == 0, made.stderr
    server = subprocess.Popen(
        ["bash", "-c", mirror.rstrip(" &").replace("8765", str(port))],
        cwd=fresh_clone,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_open(port):
            assert time.monotonic() < deadline and server.poll() is None, "the mirror did not start"
            time.sleep(0.1)
        result = shell(materialize.replace("8765", str(port)), fresh_clone, env)
        # A mistyped week gets our message before Dagster is asked.
        sunday = shell("./mta materialize 2023-12-31", fresh_clone, env)
        # A week the mirror does not have: the run fails and the summary says where and why.
        missing = shell(f"MTA_SOURCE_URL=http://127.0.0.1:{port} ./mta materialize 2024-01-13", fresh_clone, env)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert_no_debug_flood(output)
    [(short_id, status, weeks)] = RUN_LINE.findall(result.stdout)
    assert (status, weeks) == ("SUCCESS", "2023-12-30...2024-01-06")
    assert re.findall(r"^week (\S+)$", result.stdout, re.M) == ["2023-12-30", "2024-01-06"]
    assert result.stdout.count(f"  rows {READINGS:,}, rejects 0, duplicates removed 0") == 2
    # Each week's checks, plus any recorded for the run without a partition: none failed.
    checks = CHECKS_LINE.findall(result.stdout)
    assert len(checks) >= 2 and all(failed == "0" for _, failed in checks), result.stdout

    assert sunday.returncode == 2
    assert sunday.stderr.strip() == (
        "./mta: --partition 2023-12-31: week '2023-12-31' is a Sunday, not a Saturday: weeks start on a Saturday "
        "(the week holding 2023-12-31 is 2023-12-30)"
    )
    assert "Could not find a partition" not in sunday.stdout + sunday.stderr

    assert missing.returncode != 0
    [(failed_id, failed_status, failed_week)] = RUN_LINE.findall(missing.stdout)
    assert (failed_status, failed_week) == ("FAILURE", "2024-01-13")
    assert re.search(
        rf"^failed step turnstile_weeks: .*week 2024-01-13.*127\.0\.0\.1:{port}/turnstile_240120\.txt.*404",
        missing.stdout,
        re.M,
    ), missing.stdout

    with the_instance(fresh_clone) as instance:
        # One run for the range, one for the missing week; the Sunday never reached Dagster.
        runs = {run.run_id[:8]: run.status for run in instance.get_runs()}
        assert runs == {short_id: dg.DagsterRunStatus.SUCCESS, failed_id: dg.DagsterRunStatus.FAILURE}
        assert materialized_weeks(instance) == {"2023-12-30", "2024-01-06"}


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--partition", "2030-01-05"], {}, "week 2030-01-05 is not published yet: turnstile_300112.txt appears on"),
        (["--partition-range", "2024-01-06...2023-12-30"], {}, "the first week is after the last"),
        (["--partition", "2023-12-30..2024-01-06"], {}, "a range is --partition-range FIRST...LAST (three dots)"),
        (["--partition-range", "2023-12-30"], {}, "write FIRST...LAST, e.g. 2023-12-30...2024-01-20"),
        (["--partition=2009-01-03"], {}, "week 2009-01-03 is before the first week, 2010-04-24"),
        (
            ["--partition-range", "2024-02-10...2024-02-17"],
            {"MTA_LAST_WEEK": "2024-02-10"},
            "week 2024-02-17 is after the declared last week, MTA_LAST_WEEK=2024-02-10",
        ),
    ],
)
def test_wrapper_checks_weeks_in_our_words(
    args: list[str], env: dict[str, str], message: str, tmp_path: Path
) -> None:
    checked = subprocess.run(
        [str(REPO_ROOT / "mta"), "dagster", "asset", "materialize", "--select", "turnstile_csv*", *args],
        env=newcomer_environment(DAGSTER_HOME=str(tmp_path), **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 2
    assert checked.stderr.startswith("./mta: ") and message in checked.stderr, checked.stderr


WRONG_SETTING_LINE = "./mta: MTA_MAX_FILE_BYTES=-1 is outside >= 1024; a normal week is about 33 MB"


@pytest.mark.parametrize(
    "command",
    [["./mta", "run"], ["./mta", "materialize", "2023-12-30"], ["./mta", "dev"], ["make", "run", "READINGS=500"]],
)
def test_a_wrong_setting_is_one_line_before_anything_starts(command: list[str], tmp_path: Path) -> None:
    if not (VENV / "bin" / "dagster").exists():
        pytest.skip(f"the tests do not run from a venv with dagster ({VENV}); run them with make test")
    env = newcomer_environment(
        DAGSTER_HOME=str(tmp_path / "home"),
        MTA_LAKE_URL=str(tmp_path / "lake"),
        MTA_MIRROR_DIR=str(tmp_path / "mirror"),
        MTA_MAX_FILE_BYTES="-1",
    )
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    assert result.returncode == 2, result.stdout + result.stderr
    ours = [line for line in result.stderr.splitlines() if not line.startswith("make")]
    assert ours == [WRONG_SETTING_LINE], result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    # Refused before a mirror was started or a week generated.
    assert "source:" not in result.stdout and not (tmp_path / "mirror").exists()


def test_make_dev_is_offline_and_stops_its_mirror(tmp_path: Path) -> None:
    if not (VENV / "bin" / "dagster").exists():
        pytest.skip(f"the tests do not run from a venv with dagster ({VENV}); run them with make test")
    ui_port = free_port()
    env = newcomer_environment(
        DAGSTER_HOME=str(tmp_path / "home"),
        MTA_LAKE_URL=str(tmp_path / "lake"),
        MTA_MIRROR_DIR=str(tmp_path / "mirror"),
        MTA_SYNTHETIC_READINGS="2000",
        MTA_DEV_WEEKS="2",
    )
    dev = subprocess.Popen(
        [str(REPO_ROOT / "mta"), "dev", "--port", str(ui_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    # Read on a thread: a blocking readline would not see the deadline, and output left
    # unread would fill the pipe and stall dg dev.
    output: Queue[str] = Queue()
    reader = threading.Thread(target=lambda: [output.put(line) for line in dev.stdout], daemon=True)
    reader.start()
    try:
        mirror_url = None
        deadline = time.monotonic() + 180
        while mirror_url is None or not port_open(ui_port):
            assert time.monotonic() < deadline and dev.poll() is None, "".join(lines)[-3000:]
            try:
                line = output.get(timeout=0.2)
            except Empty:
                continue
            lines.append(line)
            found = re.search(r"^source: (http://127\.0\.0\.1:\d+) \(loopback mirror", line)
            mirror_url = mirror_url or (found.group(1) if found else None)
        # The synthetic weeks are served on loopback, and dg dev got them as its source.
        for name in ("turnstile_240106.txt", "turnstile_240113.txt"):
            with urllib.request.urlopen(f"{mirror_url}/{name}", timeout=10) as response:
                assert response.status == 200
        dagster_dev = [
            pid for pid in _descendants(dev.pid) if b"dagster" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert dagster_dev, "dagster dev is not running"
        # Started the dg way, the code location found from the checkout's pyproject.toml.
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in _descendants(dev.pid)]
        assert any(b"/dg\0dev\0--target-path\0" + str(REPO_ROOT).encode() in command for command in commands)
        environ = Path(f"/proc/{dagster_dev[0]}/environ").read_bytes().split(b"\0")
        assert f"MTA_SOURCE_URL={mirror_url}".encode() in environ
        assert f"DAGSTER_HOME={tmp_path / 'home'}".encode() in environ
        # The mirror's last week is the source's: the UI's newest partition is one it serves.
        assert b"MTA_LAST_WEEK=2024-01-06" in environ
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/server_info", timeout=10) as response:
            assert response.status == 200

        # Ctrl-C in the terminal: SIGINT to the whole foreground process group.
        os.killpg(dev.pid, signal.SIGINT)
        dev.wait(timeout=90)
        mirror_port = int(mirror_url.rsplit(":", 1)[1])
        assert not port_open(mirror_port), "the mirror outlived make dev"
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait(timeout=30)
        reader.join(timeout=10)  # the pipe ends with the process group
        dev.stdout.close()


def _descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (Linux /proc), oldest first."""
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    found, queue = [], [pid]
    while queue:
        for child in sorted(children.get(queue.pop(0), [])):
            found.append(child)
            queue.append(child)
    return found


def _postgres_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(candidates[-1]).parent if candidates else None


@pytest.mark.postgres
def test_ci_postgres_is_stopped_by_whoever_started_it(tmp_path: Path) -> None:
    if _postgres_bindir() is None:
        pytest.skip("PostgreSQL's server binaries are not installed (.ci/postgres.sh installs them in CI)")
    # As root the server runs as `postgres`, which must reach the folder: not under pytest's 0700 tmp.
    base = Path(tempfile.mkdtemp(prefix="mta-pg-", dir="/tmp"))
    base.chmod(0o755)
    port = free_port()
    env = dict(os.environ, MTA_PG_DIR=str(base / "pg"), MTA_PG_PORT=str(port))
    script = str(REPO_ROOT / ".ci" / "postgres.sh")
    try:
        first = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=180)
        assert first.returncode == 0, first.stderr
        assert first.stdout.splitlines() == [
            f"export MTA_TEST_POSTGRES_URL=postgresql://mta:mta@127.0.0.1:{port}/mta_test",
            "export MTA_PG_STARTED=1",
        ]
        assert port_open(port)
        # Already running: this call started nothing, so its caller must stop nothing.
        again = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=60)
        assert again.stdout.splitlines() == [first.stdout.splitlines()[0]]
        stopped = subprocess.run(["bash", script, "stop"], env=env, capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        assert not port_open(port)
    finally:
        subprocess.run(["bash", script, "stop"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
