"""`python -m kube_taskqueue.cli`, as the tests and benchmarks run the console script."""

from kube_taskqueue.cli.main import main

raise SystemExit(main())
