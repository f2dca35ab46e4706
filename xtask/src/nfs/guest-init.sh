#!/bin/sh
# racelab's NFS guest init, written by `cargo xtask nfs run` from xtask/src/nfs/guest-init.sh
# (rewritten every run: edit the template, not this copy).
#
# PID 1 of the guest, on the host's own root: User-mode Linux boots it through hostfs; qemu's
# initramfs runs it chrooted into the host's root shared over 9p. It brings up a
# kernel nfsd exporting a guest tmpfs and mounts it back over loopback with the guest kernel's NFS
# client, three times: NFSv4.2, NFSv3, and NFSv3 again with `nosharecache` (a second client with
# its own attribute cache). Then it runs the command the host wrote into the rig and powers off.
#
# The guest's / is the host's /, read-write: everything this script changes outside the rig is
# a guest-private mount (tmpfs over /run and /var/lib/nfs, a bind over /etc/exports), so the
# host's configuration is never written. The host reads this script's markers from the console:
#   racelab-nfs-setup-failed: WHAT   set-up failed (the host shows the console and exits 3)
#   racelab-nfs-begin                 the mounts are up; their /proc/mounts lines follow
#   racelab-nfs-command               what follows is the command's output
#   racelab-nfs-exit=N                the command exited with status N
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
R=@RIG@
# The guest kernel's modules: modprobe -d finds them under $M/lib/modules/$(uname -r).
M=@MODULES@
fail() {
  echo "racelab-nfs-setup-failed: $*"
  echo o > /proc/sysrq-trigger
  # PID 1 must not exit: the kernel would panic (noise) before the power-off lands.
  while :; do sleep 60; done
}
mount -t proc proc /proc || fail "mount /proc"
@FORCE_FAIL@
mount -t sysfs sys /sys
# Shared memory for the command's programs (python's multiprocessing), guest-private.
mkdir -p /dev/shm && mount -t tmpfs shm /dev/shm
# Keep the guest kernel's routine messages off the console: they would interleave with the
# command's output. Warnings and errors (levels 0-4) still show.
echo 5 > /proc/sys/kernel/printk
mount -t tmpfs tmpfs /run || fail "tmpfs over /run"
mount -t tmpfs tmpfs /var/lib/nfs || fail "tmpfs over /var/lib/nfs"
mkdir -p /run/rpc_pipefs /var/lib/nfs/v4recovery /var/lib/nfs/sm /var/lib/nfs/sm.bak /var/lib/nfs/nfsdcld
: > /var/lib/nfs/etab
# Never write the host's /etc/exports: exportfs writes this guest-private file instead.
: > /run/exports
mount --bind /run/exports /etc/exports || fail "bind over /etc/exports"
ip link set lo up || fail "ip link set lo up (is iproute2 installed?)"
# lockd first, with short NLM grace periods: the default 50 s stalls the first NFSv3 lock.
modprobe -d "$M" lockd nlm_grace_period=3 nlm_timeout=3 || fail "modprobe lockd from $M"
for m in nfsd nfsv3 nfsv4; do
  modprobe -d "$M" $m || fail "modprobe $m from $M"
done
mount -t nfsd nfsd /proc/fs/nfsd || fail "mount nfsd"
# Where Debian's nfs-utils look for it (pipefs-directory in /etc/nfs.conf).
mount -t rpc_pipefs rpc_pipefs /run/rpc_pipefs || fail "mount rpc_pipefs"
# Leases off: a v3 lock on a file a v4 client holds a delegation for stalls about 3 s.
echo 0 > /proc/sys/fs/leases-enable
mkdir -p "$R/export" "$R/nfs4" "$R/nfs3" "$R/nfs3b" "$R/nfs4b"
mount -t tmpfs -o mode=0777 tmpfs "$R/export" || fail "tmpfs over $R/export"
rpcbind -w || fail "rpcbind"
exportfs -o rw,no_root_squash,insecure,fsid=0,sync "127.0.0.1:$R/export" || fail "exportfs"
# The second NFSv4.2 client (below) reaches the server at 127.0.0.2.
exportfs -o rw,no_root_squash,insecure,fsid=0,sync "127.0.0.2:$R/export" || fail "exportfs to 127.0.0.2"
rpc.statd --no-notify || fail "rpc.statd"
rpc.mountd 2>/dev/null || fail "rpc.mountd"
# nfsdcld must hold the cld pipe before nfsd starts: with no clients to reclaim the kernel then
# skips the 90 s NFSv4 grace period, during which every OPEN of a new file stalls. Without it
# the kernel falls back to the usermode helper and keeps the grace period.
nfsdcld -F -p /run/rpc_pipefs &
i=0
until ls -l /proc/$!/fd 2>/dev/null | grep -q inotify; do
  i=$((i + 1))
  [ $i -gt 100 ] && fail "nfsdcld did not start watching for its pipe within 10 s"
  sleep 0.1
done
rpc.nfsd 4 || fail "rpc.nfsd"
# The node name the NFSv4 client gives the server as its identity (client B sets its own below).
echo racelab-nfs-a > /proc/sys/kernel/hostname
mount -t nfs -o vers=4.2 127.0.0.1:/ "$R/nfs4" || fail "mount NFSv4.2"
mount -t nfs -o vers=3 "127.0.0.1:$R/export" "$R/nfs3" || fail "mount NFSv3"
mount -t nfs -o vers=3,nosharecache "127.0.0.1:$R/export" "$R/nfs3b" || fail "mount the second NFSv3 client"
# A second NFSv4.2 *client*, not just a second superblock: the kernel shares one nfs_client (one
# lease, one client ID, one open-owner space) between mounts of the same server address, and
# names it to the server by the node name. So client B mounts through another address (all of
# 127/8 is loopback) from its own UTS namespace with its own node name: nfsd then sees two
# clients (/proc/fs/nfsd/clients), as with two machines. Without it the server took B's opens
# and removes as A's, and forced replays diverged (a read saw contents the model had unlinked).
unshare --uts sh -c "echo racelab-nfs-b > /proc/sys/kernel/hostname && mount -t nfs -o vers=4.2,nosharecache 127.0.0.2:/ '$R/nfs4b'" || fail "mount the second NFSv4.2 client (unshare --uts, 127.0.0.2)"
mkdir -p "$R/nfs4/racelab" || fail "mkdir on NFSv4.2"
echo "racelab-nfs-begin"
echo "racelab-nfs: guest up; NFS mounts (in the guest kernel only, none on the host):"
grep -E ' nfs4? ' /proc/mounts
echo "racelab-nfs: NFSv4 clients the server sees:"
cat /proc/fs/nfsd/clients/*/info 2>/dev/null | grep -E '^(clientid|address|name):'
echo "racelab-nfs-command"
# The command's output goes through a pipe, not the guest console (a tty): programs print as
# they would into a log, without progress bars or terminal control sequences.
{ sh "$R/cmd" < /dev/null; echo $? > /run/racelab-status; } 2>&1 | cat
# qemu's 9p root caches writes in the guest (cache=loose): flush them before the host reads.
sync
echo "racelab-nfs-exit=$(cat /run/racelab-status)"
umount "$R/nfs4b" "$R/nfs3b" "$R/nfs3" "$R/nfs4"
echo o > /proc/sysrq-trigger
while :; do sleep 60; done
