import re
from pathlib import Path

from mta_assets.mta.formats import columns_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_column_table_is_the_contracts():
    text = README.read_text()
    block = re.search(r"<!-- columns:start -->\n(.*?)\n<!-- columns:end -->", text, re.S)
    assert block, "README lost its columns markers"
    assert block.group(1).strip() == columns_markdown().strip()


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
    for subcommand in ("./mta run", "./mta materialize", "./mta summary", "./mta dev"):
        assert subcommand in text, subcommand
    # The fresh-clone test (test_first_hour.py) checks that runs land in this instance.
    assert "`DAGSTER_HOME=./.dagster_home`" in text
