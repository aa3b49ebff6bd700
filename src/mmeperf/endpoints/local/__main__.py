"""``python -m mmeperf.endpoints.local --config JSON [--ready-file PATH]``: the server process.

How ``LocalEndpoint`` starts the server without paying for the whole CLI's imports; people use
``mmeperf serve``, which builds the same :class:`ServerConfig` from its options.
"""

from __future__ import annotations

import argparse

from mmeperf.endpoints.local.config import ServerConfig
from mmeperf.endpoints.local.owner import watch_owner
from mmeperf.endpoints.local.server import run


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m mmeperf.endpoints.local")
    parser.add_argument("--config", required=True, help="ServerConfig as JSON")
    parser.add_argument("--ready-file", default=None)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--owner-pid", type=int, default=None, help="stop when this parent is gone")
    args = parser.parse_args()
    watch_owner(args.owner_pid)
    run(ServerConfig.model_validate_json(args.config), ready_file=args.ready_file, log_level=args.log_level)


if __name__ == "__main__":
    main()
