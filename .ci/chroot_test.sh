#!/usr/bin/env bash
# Runs the README's test command in a plain chroot of the Debian 13 root
# (.ci/debian_root.sh), where the kernel refuses user namespaces (EPERM):
# the suite must say so once, report the tests that need them as ignored,
# and pass the rest (the refusal path's own tests included). Not part of
# CI; needs root (mount namespace, bind mounts, chroot).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 2; }
DENO_EXE=$(npx -y deno@2.9.6 eval 'console.log(Deno.execPath())')
DENO_CACHE=${DENO_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/deno}
root=$(.ci/debian_root.sh)
export root DENO_EXE DENO_CACHE
# A private mount namespace: the binds vanish with it.
exec unshare -m bash -c '
  set -e
  mount --make-rprivate /
  mkdir -p "$root$PWD" "$root$DENO_CACHE" "$root/usr/local/bin"
  touch "$root/usr/local/bin/deno"
  mount --bind "$PWD" "$root$PWD"
  mount --bind "$DENO_CACHE" "$root$DENO_CACHE"
  mount --bind "$DENO_EXE" "$root/usr/local/bin/deno"
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount -t tmpfs tmpfs "$root/tmp"
  exec chroot "$root" /usr/bin/env -i HOME=/root \
    PATH=/usr/local/bin:/usr/bin:/bin DENO_DIR="$DENO_CACHE" NO_COLOR=1 \
    DENO_NO_UPDATE_CHECK=1 sh -c "cd \"$PWD\" && deno task test"
'
