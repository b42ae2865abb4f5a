"""`python -m worker` is the `sluice` command."""

from worker.cli import main

main()
