"""Benchmark of the MTA assets against a plain Python script: ``python -m mta_assets_bench``."""
