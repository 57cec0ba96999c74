#!/usr/bin/env bash
# Makes sure the Debian/Ubuntu packages the lab and the tests need are installed: installs the
# missing ones with apt-get when run as root, otherwise names them and exits non-zero.
# Usage: ensure-system.sh package:command [package:command ...]; a command starting with / is a
# file the package installs (for packages without a command, such as python3-pandas).
set -euo pipefail
missing=()
for pair in "$@"; do
  pkg=${pair%%:*}
  cmd=${pair#*:}
  if [ "${cmd#/}" != "$cmd" ]; then
    [ -e "$cmd" ] || missing+=("$pkg")
  else
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "livinglab: missing system packages: ${missing[*]}" >&2
  echo "livinglab: install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "livinglab: missing system packages: ${missing[*]} (no apt-get here: install them with your package manager)" >&2
  exit 1
fi
echo "livinglab: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# policy-rc.d keeps the packages from starting their own services on the ports the lab uses.
had_policy=0
[ -e /usr/sbin/policy-rc.d ] && had_policy=1
[ $had_policy -eq 1 ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
status=0
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || status=$?
[ $had_policy -eq 1 ] || rm -f /usr/sbin/policy-rc.d
exit $status
