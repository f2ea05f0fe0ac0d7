"""`python -m modelreg_metadata`: run the metadata service with settings from the environment."""

from __future__ import annotations

from modelreg_common.entrypoint import run_service

from modelreg_metadata.config import MetadataSettings
from modelreg_metadata.server import run


def main() -> None:
    run_service("modelreg-metadata", MetadataSettings.from_environment, run)


if __name__ == "__main__":
    main()
