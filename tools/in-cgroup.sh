#!/bin/sh
# in-cgroup.sh NAME COMMAND...: run COMMAND in a cgroup of its own in the unified (v2) hierarchy,
# /sys/fs/cgroup[/unified]/vhbackup-tests/NAME-<pid>, and remove that cgroup afterwards.
#
# systemd-nspawn --keep-unit puts its container below the cgroup it runs in; two nspawns in the same
# cgroup would share one "payload" subtree. The tests' containers (tests/system/container.py) and the
# root builds (tools/system-rootfs.sh) each get their own. Exits with COMMAND's status.
set -eu
name=$1
shift
unified=/sys/fs/cgroup
[ -f "$unified/cgroup.controllers" ] || unified=/sys/fs/cgroup/unified
[ -f "$unified/cgroup.controllers" ] || { echo "in-cgroup: no cgroup v2 hierarchy" >&2; exit 1; }
cgroup="$unified/vhbackup-tests/$name-$$"
origin="$unified$(sed -n 's/^0:://p' /proc/self/cgroup)"
mkdir -p "$cgroup"
echo $$ >"$cgroup/cgroup.procs"
status=0
"$@" || status=$?
echo $$ >"$origin/cgroup.procs"
find "$cgroup" -depth -type d -exec rmdir {} + 2>/dev/null || true
exit $status
