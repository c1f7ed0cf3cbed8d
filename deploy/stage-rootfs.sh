#!/bin/sh
# Assembles lb's container root filesystem in <dest>: the binary at /lb, every path listed in <list>
# (deploy/rootfs.txt: the shared libraries it loads), /etc/passwd and /etc/group with a non-root user lb (uid and
# gid 10001), an empty /tmp (mode 1777) and /proc (where the runtime mounts procfs; Bun aborts without it).
# deploy/Dockerfile's build stage runs it; test/ship/deploy.test.ts runs it too and then runs lb from <dest> in a chroot.
#
#   sh deploy/stage-rootfs.sh deploy/rootfs.txt dist/lb /rootfs
#
# It first checks that `ldd <binary>` names no library missing from <list>, so a Bun upgrade that links another
# library fails the image build here instead of the container at start.
set -eu
[ $# -eq 3 ] || { echo "usage: $0 <list> <binary> <dest>" >&2; exit 2; }
list=$1 binary=$2 dest=$3
LB_UID=10001

paths=$(sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$list")

# ldd prints "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)";
# linux-vdso.so.1 is the kernel's and has no file. It fails for a binary built for another architecture than this
# system's, which would otherwise pass with no library needed.
linked=$(ldd "$binary") || { echo "$0: ldd cannot read $binary (missing, or built for another architecture than this system's?)" >&2; exit 1; }
needed=$(printf '%s\n' "$linked" | awk '$2 == "=>" { print ($3 ~ /^\//) ? $3 : $1 " (not found)" } $1 ~ /^\// { print $1 }')
missing=0
for lib in $needed; do
  if ! printf '%s\n' "$paths" | grep -qxF "$lib"; then
    echo "$0: $binary needs $lib, which $list does not list; add it there" >&2
    missing=1
  fi
done
[ "$missing" -eq 0 ] || exit 1

mkdir -p "$dest/etc" "$dest/tmp" "$dest/proc"
chmod 0755 "$dest"  # the image's / (a mktemp -d folder is 0700, which the user lb could not enter)
chmod 1777 "$dest/tmp"
cp "$binary" "$dest/lb"
chmod 0755 "$dest/lb"
for path in $paths; do
  # -L copies the file a symlink points to (ld-linux-x86-64.so.2 is one), under the listed path.
  cp -L --parents "$path" "$dest"
done
printf 'root:x:0:0:root:/:/sbin/nologin\nlb:x:%s:%s:lb:/:/sbin/nologin\n' "$LB_UID" "$LB_UID" > "$dest/etc/passwd"
printf 'root:x:0:\nlb:x:%s:\n' "$LB_UID" > "$dest/etc/group"
echo "staged $dest: /lb and $(printf '%s\n' "$paths" | wc -l) files from $list, user lb ($LB_UID)"
