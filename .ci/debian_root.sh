#!/usr/bin/env bash
# Makes (or reuses) a Debian 13 "trixie" root (glibc 2.41) for the second CI
# leg and prints its path. debootstrap's minbase plus what the suite needs:
# gcc and libc6-dev (the struct-layout test compiles C), binutils (the
# assembler test). The mirror is the one this machine's apt uses. A root
# whose stamp matches is reused: about 30 s saved per run.
set -euo pipefail

ROOT=${ISOLA_CI_ROOT:-/var/tmp/isola-ci/trixie}
SUITE=trixie
INCLUDE=gcc,binutils,libc6-dev
STAMP="$ROOT/.isola-ci-root"
WANT="$SUITE minbase $INCLUDE"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ "${#need[@]}" -gt 0 ]; then
  as_root apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    "${need[@]}" >&2
fi

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  echo "$ROOT"
  exit 0
fi

# The first Debian mirror among apt's sources (deb822 or one-line format).
mirror=$(
  {
    grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
    grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
      awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}'
  } | grep -E '/debian/?$' | head -1 || true
)
mirror=${mirror:-http://deb.debian.org/debian}

as_root rm -rf "$ROOT.tmp"
as_root mkdir -p "$(dirname "$ROOT")"
echo "debootstrap $SUITE from $mirror into $ROOT" >&2
as_root debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" \
  "$ROOT.tmp" "$mirror" >&2
echo "$WANT" | as_root tee "$ROOT.tmp/.isola-ci-root" >/dev/null
as_root rm -rf "$ROOT"
as_root mv "$ROOT.tmp" "$ROOT"
echo "$ROOT"
