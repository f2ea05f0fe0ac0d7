# The `modelreg` CLI, for deployment jobs: init containers pulling a model, training Jobs pushing one.
# Build from the repository root (the context must hold the uv workspace and its lock file):
#   docker build -f deploy/docker/cli.Dockerfile -t modelreg/cli:0.1.0 .
# Two stages: the build stage installs exactly the locked dependencies of the `modelreg` workspace
# member into /opt/venv with uv; the final stage is the same slim Python with that venv only
# (no uv, no pip, no compilers), run as a numeric non-root user so `runAsNonRoot` can verify it.
# No HEALTHCHECK: Kubernetes probes (and compose's own checks) do that.

FROM python:3.11.14-slim-bookworm AS build
ENV UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv
RUN pip install --no-cache-dir --disable-pip-version-check uv==0.13.8
WORKDIR /src
COPY . .
# --frozen: the lock file as committed, never re-resolved; --no-editable: the workspace members are
# installed as packages, so the final stage needs nothing from /src.
RUN uv sync --frozen --no-dev --no-editable --package modelreg

FROM python:3.11.14-slim-bookworm
# pip, setuptools and wheel come with the base image; nothing installs at run time.
RUN python -m pip uninstall --yes --disable-pip-version-check pip setuptools wheel
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
ENTRYPOINT ["modelreg"]
