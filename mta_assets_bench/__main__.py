from mta_assets_bench.bench import main

raise SystemExit(main())
