"""Arrow in a run's process: no pandas import behind its back, pandas still there when asked."""

import subprocess
import sys
import textwrap


def run_fresh(code: str) -> str:
    # A fresh interpreter: whether pyarrow imported pandas is decided once per process.
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    ).stdout.split()


def test_arrow_work_after_tune_arrow_does_not_import_pandas():
    found = run_fresh(
        """
        import sys
        import numpy as np
        import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
        from mta_assets.defs.memory import tune_memory
        tune_memory()
        table = pa.table({"a": pa.array(np.arange(5)), "s": ["x"] * 5})
        pc.sum(table["a"]).as_py(); table["a"].to_numpy(); table.to_pylist()
        print("pandas" in sys.modules, pa.default_memory_pool().backend_name)
        """
    )
    assert found == ["False", "system"]


def test_pandas_still_works_for_code_that_asks_for_it():
    found = run_fresh(
        """
        import pyarrow as pa
        from mta_assets.defs.memory import tune_memory
        tune_memory()
        tune_memory()  # idempotent
        frame = pa.table({"a": [1, 2]}).to_pandas()
        import pandas as pd
        back = pa.Table.from_pandas(pd.DataFrame({"x": [3, 4]}))
        print(type(frame).__name__, frame["a"].sum(), back.num_rows, pa.array(pd.Series([1.5])).type)
        """
    )
    assert found == ["DataFrame", "3", "2", "double"]


def test_a_process_that_already_imported_pandas_is_left_as_it_is():
    found = run_fresh(
        """
        import pandas, pyarrow as pa
        from mta_assets.defs.memory import tune_memory
        tune_memory()
        print(pa.array(pandas.Series([1, 2])).type)
        """
    )
    assert found == ["int64"]
