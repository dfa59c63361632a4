"""`poseaug-serve`: serve every model bundle of a folder over gRPC."""

from __future__ import annotations

import logging
import sys

from poseaug_service.config import parse_config
from poseaug_service.repository import RepositoryError


def main(argv: list[str] | None = None) -> int:
    config = parse_config(argv)
    from poseaug_service import allocator

    allocator.configure()  # before any thread: bounded malloc arenas (allocator.py)
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from poseaug_service.auth import TokenError
    from poseaug_service.server import serve  # imported late: --help stays fast
    from poseaug_service.tls import TLSError

    try:
        return serve(config)
    except (RepositoryError, TokenError, TLSError, OSError) as exc:
        print(f"poseaug-serve: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
