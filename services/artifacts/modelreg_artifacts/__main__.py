"""`python -m modelreg_artifacts`: run the artifact service with settings from the environment."""

from __future__ import annotations

from modelreg_common.entrypoint import run_service

from modelreg_artifacts.config import ArtifactSettings
from modelreg_artifacts.server import run


def main() -> None:
    run_service("modelreg-artifacts", ArtifactSettings.from_environment, run)


if __name__ == "__main__":
    main()
