#!/bin/sh
# The test-only Python servers from PyPI (moto's S3 server, `moto[server]`), never part of the package:
#
#   $CACHE/venv                a venv of this machine's /usr/bin/python3 (python3-venv), with
#                              $CACHE/venv/bin/moto_server: what the tests on this host start
#   $CACHE/pydeps-py3.13       the same packages as wheels for Debian 13's Python 3.13, unpacked
#                              with `pip install --target` (no PyPI inside the private-network
#                              trixie container; tools/integration-in-release.py binds it there
#                              read-only and the tests run `python3 -m moto.server` with it on
#                              PYTHONPATH)
#
# (CACHE is /var/cache/vhbackup-tests unless VHBACKUP_TEST_CACHE says otherwise.) Idempotent: does
# nothing when both are there with the pinned version. Needs python3-venv (make test-deps).
set -eu
MOTO="moto[server]==5.2.5"
cache=${VHBACKUP_TEST_CACHE:-/var/cache/vhbackup-tests}
venv="$cache/venv"
stamp="$MOTO py3.11"
if [ "$(cat "$venv/.vhbackup-stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$venv"
    mkdir -p "$cache"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$MOTO" 2>&1 | grep -v "^WARNING: Location" >&2 || true
    "$venv/bin/python3" -c "import moto.server" # the stamp only after a complete install
    echo "$stamp" > "$venv/.vhbackup-stamp"
fi
for pyver in 3.13; do
    target="$cache/pydeps-py$pyver"
    if [ "$(cat "$target/.vhbackup-stamp" 2>/dev/null)" = "$MOTO" ]; then
        continue
    fi
    rm -rf "$target.new"
    "$venv/bin/pip" install -q --disable-pip-version-check --target "$target.new" --python-version "$pyver" \
        --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 --only-binary=:all: "$MOTO" 2>&1 | grep -v "^WARNING: Location" >&2 || true
    [ -d "$target.new/moto" ] && [ -d "$target.new/flask" ]
    echo "$MOTO" > "$target.new/.vhbackup-stamp"
    rm -rf "$target"
    mv "$target.new" "$target"
done
