"""The fuzz test of every RPC (tests/integration/test_fuzz.py) with a longer budget.

CI runs it with about a minute's worth of examples; this runs many more per RPC (default 1000
well-typed and 250 raw-bytes, `--examples N` to change) on a fresh local stack, and writes what
the registry answered, per RPC, to bench/results/fuzz.md. It exits non-zero on any finding
(INTERNAL, UNKNOWN, or a refusal without ErrorInfo), with the failing example in pytest's output.

    make bench-fuzz                 # or: .venv/bin/python -m bench.fuzz --examples 3000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "bench" / "results" / "fuzz.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000, help="well-typed examples per RPC")
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args()
    env = {
        **os.environ,
        "MODELREG_FUZZ_EXAMPLES": str(args.examples),
        "MODELREG_FUZZ_REPORT": str(args.report),
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "timeout=0",  # the budget is the number of examples, not the test timeout
        str(ROOT / "tests" / "integration" / "test_fuzz.py"),
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, check=False)
    print(f"summary: {args.report}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
