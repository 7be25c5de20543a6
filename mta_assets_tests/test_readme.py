"""The README as the front door and docs/ as the manual: their tables, commands and size stay true."""

import re
from pathlib import Path

from mta_assets.mta.formats import columns_markdown

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 200  # issue 19: the front door; the manual is docs/


def test_readme_is_a_front_door():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move the detail to docs/"


def test_the_column_table_is_the_contracts():
    text = (DOCS / "data.md").read_text()
    block = re.search(r"<!-- columns:start -->\n(.*?)\n<!-- columns:end -->", text, re.S)
    assert block, "docs/data.md lost its columns markers"
    assert block.group(1).strip() == columns_markdown().strip()


def test_readme_points_to_every_page_of_the_manual():
    # The settings table is generated from the settings model (docs/settings.md), so the
    # README names no variable list of its own; it links the page instead.
    text = README.read_text()
    pages = {"architecture.md", "operations.md", "data.md", "benchmark.md", "deployment.md", "settings.md"}
    missing = sorted(page for page in pages if f"(docs/{page})" not in text)
    assert not missing, f"README does not link docs/{missing}"
    assert "(settings.md)" in (DOCS / "operations.md").read_text(), "docs/operations.md does not link settings.md"


def test_readme_runs_every_command_one_way():
    """Each command in a bash block runs through make or ./mta: no venv to activate, one instance."""
    text = README.read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    assert blocks, "README lost its command blocks"
    commands = [line.strip() for block in blocks for line in block.splitlines() if line.strip()]
    one_way = re.compile(r"^(?:[A-Z_]+=\S+ )*(?:make \w+|\./mta \S+)")
    stray = [command for command in commands if not command.startswith("#") and not one_way.match(command)]
    assert stray == [], f"run these through ./mta (or a make target): {stray}"


def test_readme_documents_the_wrapper_and_the_instance_it_shares_with_make_dev():
    text = README.read_text()
    assert "## Running commands: `./mta`" in text
    for command in ("make run", "make test", "make dev", "./mta run", "./mta materialize", "./mta summary", "./mta dev"):
        assert command in text, command
    # The fresh-clone test (test_first_hour.py) checks that runs land in this instance.
    assert "`DAGSTER_HOME=./.dagster_home`" in text


def test_build_on_it_shows_a_users_asset_that_the_lineage_test_runs():
    text = README.read_text()
    [example] = re.findall(r"## Build on it\n.*?```python\n(.*?)```", text, re.S)
    assert 'io_manager_key="lake_io_manager"' in example
    assert "def readings_per_unit(turnstile_readings: pd.DataFrame) -> pd.DataFrame:" in example
    # The same asset, with its assertions, runs on both lake kinds in the lineage test.
    lineage = (ROOT / "mta_assets_tests" / "defs" / "test_lineage.py").read_text()
    assert "def readings_per_unit(turnstile_readings: pd.DataFrame) -> pd.DataFrame:" in lineage
    assert 'groupby("unit").size().rename("readings").reset_index()' in lineage
    assert "mta_assets_tests/defs/test_lineage.py" in text


def test_the_readme_example_is_a_working_asset():
    """The example as written defines a weekly asset stored by the lake IO manager."""
    import dagster as dg

    [example] = re.findall(r"## Build on it\n.*?```python\n(.*?)```", README.read_text(), re.S)
    namespace: dict = {}
    exec(compile(example, "README.md#build-on-it", "exec"), namespace)
    asset = namespace["readings_per_unit"]
    assert isinstance(asset, dg.AssetsDefinition)
    assert asset.key == dg.AssetKey("readings_per_unit")
    assert asset.partitions_def is not None and asset.partitions_def.get_partition_keys()[0] == "2010-04-24"
    assert asset.keys_by_input_name == {"turnstile_readings": dg.AssetKey("turnstile_readings")}
