#!/bin/sh
# bench/iocap.sh BYTES_PER_S COMMAND [ARG...]: run COMMAND with its reads from
# the block device that holds the current directory throttled to BYTES_PER_S
# (a cgroup-v1 blkio group; needs root), like a machine with a slower disk.
# bench_capped.sh uses it to show where prefetch pays and where it does not
# on one machine. O_DIRECT reads (flashmoe's expert reads) are throttled; so
# are page-cache misses.
set -eu
[ $# -ge 2 ] || { echo "usage: iocap.sh BYTES_PER_S COMMAND [ARG...]" >&2; exit 2; }
bps=$1
shift
root=/sys/fs/cgroup/blkio
[ -w "$root" ] || { echo "iocap: $root is not writable (need root and cgroup v1 blkio)" >&2; exit 2; }
dev=$(df --output=source . | tail -n 1)
# the whole disk's major:minor (vda1 -> vda)
disk=$(lsblk -no PKNAME "$dev" 2>/dev/null | head -n 1)
[ -n "$disk" ] || disk=$(basename "$dev")
majmin=$(lsblk -dno MAJ:MIN "/dev/$disk" | tr -d ' ')
cg="$root/iocap.$$"
mkdir "$cg"
cleanup() {
	echo $$ > "$root/cgroup.procs" 2>/dev/null || true
	rmdir "$cg" 2>/dev/null || true
}
trap cleanup EXIT
echo "$majmin $bps" > "$cg/blkio.throttle.read_bps_device"
set +e
sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' iocap "$cg" "$@"
code=$?
exit $code
