"""``python -m mta_assets.settings --markdown`` prints docs/settings.md; ``--check`` checks the environment.

``--check`` ends with one line per bad variable and exit status 1, or says how many
variables it checked: a launcher (``./mta``, ``make run``) runs it before starting Dagster.
"""

import argparse

from mta_assets.settings import VARIABLES, load
from mta_assets.settings.docs import markdown

parser = argparse.ArgumentParser(prog="python -m mta_assets.settings", description=__doc__)
action = parser.add_mutually_exclusive_group(required=True)
action.add_argument("--markdown", action="store_true", help="print the table of every setting (docs/settings.md)")
action.add_argument("--check", action="store_true", help="check the MTA_* variables of this environment")
arguments = parser.parse_args()
if arguments.markdown:
    print(markdown(), end="")
else:
    load()  # a SettingError ends the process with its lines alone (it is a SystemExit)
    print(f"settings: {len(VARIABLES)} MTA_* variables checked")
