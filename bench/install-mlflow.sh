#!/usr/bin/env bash
# Installs MLflow into its own environment (.tools/mlflow), used only by the benchmarks that
# compare against it: the product never depends on MLflow. 3.17.2 is pinned because it resolves
# here (3.18.0 did not).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_dir="${repo}/.tools/mlflow"
uv="${UV:-${repo}/.tools/uv/bin/uv}"
version="3.17.2"

if [[ -x "${env_dir}/bin/mlflow" ]] && "${env_dir}/bin/python" -c "import mlflow, sys; sys.exit(mlflow.__version__ != '${version}')"; then
    exit 0
fi
echo "installing mlflow==${version} into ${env_dir} (benchmarks only)" >&2
UV_PYTHON_DOWNLOADS=never "${uv}" venv --quiet --allow-existing --python python3 "${env_dir}"
UV_PYTHON_DOWNLOADS=never "${uv}" pip install --quiet --python "${env_dir}/bin/python" "mlflow==${version}" boto3
