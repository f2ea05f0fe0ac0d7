#!/usr/bin/env bash
# Builds <repo>/.tools/bin/modelreg-ferretdb from deploy/local/ferretdb (see main.go for why the
# wrapper exists). Idempotent: does nothing when the binary is newer than every .go file, go.mod and
# go.sum there, so the Makefile can call it on every `make tools` / `make run`.
#
# Environment: GO (Go command; default `go` on PATH, else /usr/local/go/bin/go),
#              FORCE=1 (rebuild even when up to date).
# The first build downloads the Go modules and compiles FerretDB and SQLite: several minutes on
# 2 cores, which is most of a cold first `make run`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${here}/ferretdb"
repo="$(cd "${here}/../.." && pwd)"
out="${repo}/.tools/bin/modelreg-ferretdb"

up_to_date() {
    [[ -x "${out}" ]] || return 1
    local f
    for f in "${src}"/*.go "${src}/go.mod" "${src}/go.sum"; do
        [[ "${f}" -nt "${out}" ]] && return 1
    done
    return 0
}

if [[ "${FORCE:-0}" != "1" ]] && up_to_date; then
    exit 0
fi

go_cmd="${GO:-}"
if [[ -z "${go_cmd}" ]]; then
    if command -v go >/dev/null 2>&1; then
        go_cmd="go"
    elif [[ -x /usr/local/go/bin/go ]]; then
        go_cmd="/usr/local/go/bin/go"
    else
        echo "build-ferretdb.sh: no Go toolchain found (install Go >= 1.24 or set GO=/path/to/go)" >&2
        exit 1
    fi
fi

mkdir -p "$(dirname "${out}")"
echo "building the FerretDB wrapper (first run only, a few minutes): ${out} with $("${go_cmd}" version)" >&2
# Build into a temporary name and rename, so an interrupted build never leaves a half-written binary
# that looks up to date.
(cd "${src}" && "${go_cmd}" build -mod=readonly -trimpath -buildvcs=false -o "${out}.tmp" .)
mv -f "${out}.tmp" "${out}"
