"""`python -m worker` is the `sluice` command."""

from worker.cli.main import main

main()
