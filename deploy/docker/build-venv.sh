#!/bin/sh
# build-venv.sh SRC VENV: build strangler's wheel from the source tree SRC and install it,
# with its dependencies from PyPI, into a new virtualenv VENV.
#
# The Dockerfile's build stage runs exactly this, and so does
# tests/integration/test_image_env.py: the test checks the environment the image ships.
# PYTHON picks the interpreter (default: python, the base image's /usr/local/bin/python).
# STRANGLER_EXTRAS: optional dependencies to include (default: redis, for state.backend:
# redis; the Dockerfile's ARG of the same name sets it; empty for none).
set -eu
src=$1
venv=$2
python=${PYTHON:-python}
extras=${STRANGLER_EXTRAS-redis}
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"$python" -m pip wheel --no-deps --wheel-dir "$wheels" "$src"
"$python" -m venv "$venv"
set -- "$wheels"/strangler-*.whl
if [ "$#" -ne 1 ] || [ ! -f "$1" ]; then
    echo "build-venv: expected one strangler wheel, got: $*" >&2
    exit 1
fi
"$venv/bin/python" -m pip install "$1${extras:+[$extras]}"
"$venv/bin/strangler" --version
