"""``python -m mmeperf`` runs the CLI (used to start servers and workers as subprocesses)."""

from mmeperf.cli import main

main()
