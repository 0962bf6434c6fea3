#!/usr/bin/env bash
# Installs the Debian packages Natter needs to build, run and test, and only the
# ones that are missing, so a second run costs one dpkg query and nothing else.
# Works as root, or through sudo; fails with a clear message when it cannot.
set -euo pipefail

# Every package any part of the build, the run or the tests needs. Later
# features add theirs here; the list is the single place to look.
PACKAGES=(
  build-essential pkg-config ca-certificates curl
  nats-server libnats-dev
  libmicrohttpd-dev libwebsockets-dev libcjson-dev libjwt-dev
  libcurl4-openssl-dev libcriterion-dev libsqlite3-dev libssl-dev
  sqlite3 clang-format cppcheck nodejs
)

missing=()
for p in "${PACKAGES[@]}"; do
  # "install ok installed" is the only state that means the package is usable.
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing missing Debian packages: ${missing[*]}" >&2

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo -n)
  if ! sudo -n true 2>/dev/null; then
    SUDO=(sudo)
  fi
else
  echo "setup: error: not root and sudo is not installed; install as root: apt-get install ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Lists may be stale or absent on a fresh machine: refresh them once, then install.
if ! "${SUDO[@]}" apt-get update -qq; then
  echo "setup: error: 'apt-get update' failed; check the network or the apt sources" >&2
  exit 1
fi
if ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  echo "setup: error: could not install: ${missing[*]}" >&2
  exit 1
fi
echo "setup: installed ${#missing[@]} package(s)" >&2
