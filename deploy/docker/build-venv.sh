#!/bin/sh
# build-venv.sh SRC VENV: build strangler's wheel from the source tree SRC and install it,
# with its dependencies from PyPI, into a new virtualenv VENV.
#
# The Dockerfile's build stage runs exactly this, and so does
# tests/integration/test_image_env.py: the test checks the environment the image ships.
# PYTHON picks the interpreter (default: python, the base image's /usr/local/bin/python).
set -eu
src=$1
venv=$2
python=${PYTHON:-python}
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"$python" -m pip wheel --no-deps --wheel-dir "$wheels" "$src"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install "$wheels"/strangler-*.whl
"$venv/bin/strangler" --version
