"""`python -m modelreg_metadata`: run the metadata service with settings from the environment."""

from __future__ import annotations

import gc

from modelreg_common.entrypoint import run_service

from modelreg_metadata.config import MetadataSettings
from modelreg_metadata.server import run


def main() -> None:
    # The process keeps many long-lived objects (the replica, the recent events watchers read),
    # and CPython's default thresholds (700, 10, 10) make it rescan all of them every few thousand
    # requests. Measured while creating 12,000 versions: 15 full collections of ~95 ms each and
    # 1,900 young ones; with a young generation of 10,000 objects: none and 55, the service's CPU
    # per create down 10-15% and the p99 latency of concurrent creates halved. Cyclic garbage is
    # still collected, only in fewer, larger passes.
    gc.set_threshold(10_000, 10, 10)
    run_service("modelreg-metadata", MetadataSettings.from_environment, run)


if __name__ == "__main__":
    main()
