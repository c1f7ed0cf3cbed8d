#!/bin/sh
# Installs lb, the layer-7 HTTP load balancer, from its release files:
#
#   curl -fsSL https://github.com/lb-project/lb/releases/latest/download/install.sh | sh
#
# It picks the archive for this machine (Linux or macOS, x64 or arm64, glibc or musl), checks it against the
# release's SHA256SUMS, installs lb and prints `lb --version`. Each failure is one line on stderr, starting with
# "install.sh: ", and a non-zero exit; nothing is installed unless the checksum matches.
#
#   LB_VERSION       the version to install (0.1.0 or v0.1.0); without it, the newest SHA256SUMS lists for this
#                    machine (a release's SHA256SUMS lists its own version only)
#   LB_INSTALL_BASE  where the archives and SHA256SUMS are: https://..., or file:///path (file:// needs curl);
#                    default: the GitHub release (the latest, or LB_VERSION's)
#   LB_INSTALL_DIR   where lb goes; default /usr/local/bin
#
# POSIX sh only: `sh -n install.sh` and `checkbashisms install.sh` pass.
set -eu

# The repository's address on GitHub; a placeholder until the project's home is settled: change it here.
REPO_URL=https://github.com/lb-project/lb

fail() {
  echo "install.sh: $*" >&2
  exit 1
}

# Exit status 0 on a musl libc (Alpine and the like). glibc's ldd names itself; musl's names musl.
is_musl() {
  case $(ldd --version 2>&1) in
    *musl*) return 0 ;;
    *GLIBC* | *"GNU libc"*) return 1 ;;
  esac
  for loader in /lib/ld-musl-*; do
    [ -e "$loader" ] && return 0
  done
  return 1
}

# Sets platform to the archive name's part for this machine: linux-x64, linux-arm64-musl, darwin-arm64, ...
detect_platform() {
  os=$(uname -s)
  arch=$(uname -m)
  case $os in
    Linux) os=linux ;;
    Darwin) os=darwin ;;
    *) fail "unsupported operating system '$os': lb is released for Linux and macOS (Darwin)" ;;
  esac
  case $arch in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) fail "unsupported architecture '$arch': lb is released for x86_64 and arm64" ;;
  esac
  # A shell under Rosetta says x86_64 on Apple silicon, where the x64 build's AVX instructions do not run.
  if [ "$os-$arch" = darwin-x64 ] && [ "$(sysctl -n sysctl.proc_translated 2>/dev/null)" = 1 ]; then
    arch=arm64
  fi
  if [ "$os" = linux ] && is_musl; then
    arch=$arch-musl
  fi
  platform=$os-$arch
}

# Fetches URL $1 into file $2, with curl (which also reads file:// URLs) or else wget.
download() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsL -o "$2" "$1" || fail "cannot download $1 (curl exit $?)"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$2" "$1" || fail "cannot download $1 (wget exit $?)"
  else
    fail "needs curl or wget to download $1"
  fi
}

# Sets version to the newest one SHA256SUMS ($1) lists an archive of for this platform (major.minor.patch order).
newest_listed_version() {
  version=$(sed -n "s/^[0-9a-f]\{64\} [ *]lb-\(.*\)-$platform\.tar\.gz\$/\1/p" "$1" | sort -t. -k1,1n -k2,2n -k3,3n | tail -n 1)
  [ -n "$version" ] || fail "$base/SHA256SUMS lists no lb archive for $platform"
}

# Sets actual to file $1's SHA-256, in hex.
sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    actual=$(sha256sum "$1")
  elif command -v shasum >/dev/null 2>&1; then
    actual=$(shasum -a 256 "$1")
  else
    fail "needs sha256sum or shasum to check the download"
  fi
  actual=${actual%% *}
}

# Puts lb in $dir: copied beside the old one and renamed over it, so a running lb is replaced, not written into.
install_binary() {
  staged=$dir/.lb.install.$$
  mkdir -p "$dir" 2>/dev/null || fail "cannot create $dir (run as root, or set LB_INSTALL_DIR)"
  if ! { cp "$1" "$staged" && chmod 755 "$staged" && mv -f "$staged" "$dir/lb"; } 2>/dev/null; then
    rm -f "$staged" 2>/dev/null
    fail "cannot write $dir/lb (run as root, or set LB_INSTALL_DIR)"
  fi
}

main() {
  detect_platform
  version=${LB_VERSION:-}
  version=${version#v}
  if [ -n "$version" ]; then
    base=${LB_INSTALL_BASE:-$REPO_URL/releases/download/v$version}
  else
    base=${LB_INSTALL_BASE:-$REPO_URL/releases/latest/download}
  fi
  base=${base%/}
  dir=${LB_INSTALL_DIR:-/usr/local/bin}

  tmp=$(mktemp -d 2>/dev/null) || fail "cannot create a temporary folder"
  trap 'rm -rf "$tmp"' EXIT
  trap 'exit 1' HUP INT TERM

  download "$base/SHA256SUMS" "$tmp/SHA256SUMS"
  [ -n "$version" ] || newest_listed_version "$tmp/SHA256SUMS"
  archive=lb-$version-$platform.tar.gz
  # sha256sum writes "<hex>  <name>", or "<hex> *<name>" for a file it read in binary mode.
  expected=$(awk -v name="$archive" '$2 == name || $2 == "*" name { print $1; exit }' "$tmp/SHA256SUMS")
  [ -n "$expected" ] || fail "$base/SHA256SUMS lists no $archive"

  download "$base/$archive" "$tmp/$archive"
  sha256_of "$tmp/$archive"
  [ "$actual" = "$expected" ] ||
    fail "checksum mismatch for $archive: SHA256SUMS says $expected, the download is $actual; nothing installed"

  mkdir "$tmp/unpacked"
  tar -xzf "$tmp/$archive" -C "$tmp/unpacked" lb 2>/dev/null || fail "cannot unpack lb from $archive"
  install_binary "$tmp/unpacked/lb"
  installed=$("$dir/lb" --version 2>/dev/null) || fail "installed $dir/lb, but it does not run on this machine"
  echo "installed $dir/lb: lb $installed"
}

# Called last, so that a download of this script cut short runs nothing.
main
