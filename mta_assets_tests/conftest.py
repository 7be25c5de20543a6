pytest_plugins = [
    "mta_assets_tests.fixtures_mirror",
    "mta_assets_tests.fixtures_gcs",
    "mta_assets_tests.fixtures_alerts",
    "mta_assets_tests.postgres",
]
