#!/bin/sh
# Debian 13's restic 0.18 for the tests (kept for `make restic-0.18`): see tools/fetch-restic.sh.
exec "$(dirname "$0")/fetch-restic.sh" trixie
