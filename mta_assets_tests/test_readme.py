import re
from pathlib import Path

from mta_assets.mta.formats import columns_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_column_table_is_the_contracts():
    text = README.read_text()
    block = re.search(r"<!-- columns:start -->\n(.*?)\n<!-- columns:end -->", text, re.S)
    assert block, "README lost its columns markers"
    assert block.group(1).strip() == columns_markdown().strip()


def test_readme_documents_every_environment_variable_the_code_reads():
    text = README.read_text()
    package = Path(__file__).resolve().parents[1] / "mta_assets"
    names = set()
    for source in package.rglob("*.py"):
        names.update(re.findall(r"[\"'](MTA_[A-Z0-9_]+)[\"']", source.read_text()))
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert not missing, f"README does not document {missing}"
