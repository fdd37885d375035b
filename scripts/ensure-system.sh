#!/usr/bin/env bash
# Installs the system packages the GPU tests need on a Debian machine without a GPU:
#   - a Vulkan loader and Mesa's lavapipe (software Vulkan), which Dawn (npm `webgpu`) uses in Node.
#     Bookworm's own Mesa 22.3 lavapipe is refused by Dawn ("shaderUniform*ArrayDynamicIndexing
#     required"), so on bookworm the packages come from bookworm-backports (Mesa 25).
#   - Debian's chromium, for the browser tests (headless WebGPU on its bundled SwiftShader).
#   - python3, for the test that decodes containers with the format's reference decoder
#     (docs/decode_container.py, standard library only).
#   - spirv-tools, libvulkan-dev and gcc, for the benchmark's RDNA3 instruction counts
#     (bench/gpu/rdnaIsa.ts: Dawn's SPIR-V assembled by spirv-as and compiled by Mesa's RADV, which
#     mesa-vulkan-drivers holds, through a small C helper built against the Vulkan headers).
#
# Idempotent and quick when everything is there: it only reads the dpkg database (no network, no apt
# lock), and runs `apt-get update` only when something must be installed. Where it cannot install
# (no apt-get, e.g. macOS; not root and no password-less sudo) it prints one line saying what is
# missing and exits 0: a machine with a real GPU needs none of this, and the GPU tests themselves say
# why they cannot run when no adapter exists.
#
# Test hooks (environment variables, defaults in brackets):
#   ENSURE_SYSTEM_APT_SOURCES_DIR  where apt sources live and the backports file is written
#                                  [/etc/apt/sources.list.d]; /etc/apt/sources.list is also searched
#                                  when this is the default
#   ENSURE_SYSTEM_OS_RELEASE       the os-release file that names the Debian release [/etc/os-release]
#   ENSURE_SYSTEM_DRY_RUN=1        print the apt-get commands instead of running them
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

readonly SOURCES_DIR="${ENSURE_SYSTEM_APT_SOURCES_DIR:-/etc/apt/sources.list.d}"
readonly OS_RELEASE="${ENSURE_SYSTEM_OS_RELEASE:-/etc/os-release}"
readonly DRY_RUN="${ENSURE_SYSTEM_DRY_RUN:-0}"
readonly BACKPORTS_FILE="$SOURCES_DIR/bookworm-backports.sources"
readonly KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# The oldest Mesa whose lavapipe Dawn accepts (checked: 22.3 is refused, 25.0 works).
readonly MIN_MESA_VERSION=24

say() { echo "ensure-system: $*"; }

# Version of an installed package, or nothing when it is not (fully) installed. Always succeeds
# (dpkg-query fails for an unknown package, which pipefail would pass on).
installed_version() {
  { dpkg-query -W -f='${db:Status-Status} ${Version}\n' "$1" 2>/dev/null || true; } | awk '$1 == "installed" { print $2 }'
}

# The release codename (bookworm, trixie, jammy, ...), or nothing.
release_codename() {
  [[ -r "$OS_RELEASE" ]] || return 0
  # shellcheck disable=SC1090
  (. "$OS_RELEASE" && echo "${VERSION_CODENAME:-}")
}

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
  say "no apt-get here: not installing a software Vulkan driver or chromium (a real GPU needs neither; otherwise install Mesa >= $MIN_MESA_VERSION lavapipe or a Vulkan driver yourself)"
  exit 0
fi

codename="$(release_codename)"
use_backports=0
[[ "$codename" == bookworm ]] && use_backports=1

# What is missing. On bookworm, mesa-vulkan-drivers also counts as missing while it is bookworm's own
# 22.3 (too old for Dawn); elsewhere the release's Mesa is as good as apt can do.
mesa_too_old() {
  local version
  version="$(installed_version mesa-vulkan-drivers)"
  [[ -z "$version" ]] && return 0
  [[ $use_backports == 1 ]] && ! dpkg --compare-versions "$version" ge "$MIN_MESA_VERSION"
}
vulkan_packages_missing=0
mesa_too_old && vulkan_packages_missing=1
[[ -n "$(installed_version libvulkan1)" ]] || vulkan_packages_missing=1
chromium_missing=0
[[ -n "$(installed_version chromium)" ]] || chromium_missing=1
python_missing=0
[[ -n "$(installed_version python3)" ]] || python_missing=1
readonly ISA_PACKAGES=(spirv-tools libvulkan-dev gcc)
isa_missing=0
for package in "${ISA_PACKAGES[@]}"; do
  [[ -n "$(installed_version "$package")" ]] || isa_missing=1
done

if [[ $vulkan_packages_missing == 0 && $chromium_missing == 0 && $python_missing == 0 && $isa_missing == 0 ]]; then
  exit 0
fi

missing=()
if [[ $vulkan_packages_missing == 1 ]]; then
  if [[ $use_backports == 1 ]]; then
    missing+=("mesa-vulkan-drivers>=$MIN_MESA_VERSION" libvulkan1)
  else
    missing+=(mesa-vulkan-drivers libvulkan1)
  fi
fi
if [[ $chromium_missing == 1 ]]; then missing+=(chromium); fi
if [[ $python_missing == 1 ]]; then missing+=(python3); fi
if [[ $isa_missing == 1 ]]; then missing+=("${ISA_PACKAGES[@]}"); fi

# Root, or password-less sudo (never prompt: this runs from `npm test`).
as_root=()
if [[ $EUID -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    as_root=(sudo -n env DEBIAN_FRONTEND=noninteractive)
  elif [[ "$DRY_RUN" != 1 ]]; then
    say "missing ${missing[*]}; not root and no password-less sudo, so not installing them (GPU/browser tests will say why they cannot run)"
    exit 0
  fi
fi

run_as_root() {
  if [[ "$DRY_RUN" == 1 ]]; then
    echo "+ ${as_root[*]:+${as_root[*]} }$*"
  else
    "${as_root[@]}" "$@"
  fi
}

# True when some apt source (one-line or deb822 format) already names bookworm-backports.
backports_configured() {
  local files=("$SOURCES_DIR"/*.list "$SOURCES_DIR"/*.sources)
  [[ -z "${ENSURE_SYSTEM_APT_SOURCES_DIR:-}" ]] && files+=(/etc/apt/sources.list)
  local file
  for file in "${files[@]}"; do
    [[ -f "$file" ]] || continue
    # Ignore commented lines; a deb822 "Suites:" line or a one-line "deb ... bookworm-backports ...".
    if grep -Eq '^[^#]*[[:space:]]bookworm-backports([[:space:]]|$)' "$file"; then
      return 0
    fi
  done
  return 1
}

if [[ $vulkan_packages_missing == 1 && $use_backports == 1 ]] && ! backports_configured; then
  say "adding the bookworm-backports apt source ($BACKPORTS_FILE)"
  source_text="Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: $KEYRING
"
  if [[ "$DRY_RUN" == 1 && -z "${ENSURE_SYSTEM_APT_SOURCES_DIR:-}" ]]; then
    echo "+ write $BACKPORTS_FILE"
  else
    # Written through a temporary file so that a failed write never leaves half a source behind.
    tmp="$(mktemp)"
    printf '%s' "$source_text" >"$tmp"
    if [[ -n "${ENSURE_SYSTEM_APT_SOURCES_DIR:-}" ]]; then
      install -m 0644 "$tmp" "$BACKPORTS_FILE"
    else
      "${as_root[@]}" install -m 0644 "$tmp" "$BACKPORTS_FILE"
    fi
    rm -f "$tmp"
  fi
fi

# On bookworm (this project's CI) a failed install fails the script. On other releases package names
# and versions may differ (Ubuntu ships chromium as a snap), so a failure there is reported, not fatal.
install_packages() {
  if [[ $use_backports == 1 ]]; then
    run_as_root "$@"
  elif ! run_as_root "$@"; then
    say "warning: '$*' failed on ${codename:-this release}; GPU/browser tests may not find an adapter"
  fi
}

say "installing ${missing[*]}"
install_packages apt-get update
if [[ $vulkan_packages_missing == 1 ]]; then
  if [[ $use_backports == 1 ]]; then
    install_packages apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1
  else
    install_packages apt-get install -y mesa-vulkan-drivers libvulkan1
  fi
fi
if [[ $chromium_missing == 1 ]]; then
  install_packages apt-get install -y chromium
fi
if [[ $python_missing == 1 ]]; then
  install_packages apt-get install -y python3
fi
if [[ $isa_missing == 1 ]]; then
  install_packages apt-get install -y "${ISA_PACKAGES[@]}"
fi

if [[ "$DRY_RUN" != 1 ]] && mesa_too_old; then
  mesa_version="$(installed_version mesa-vulkan-drivers)"
  say "warning: mesa-vulkan-drivers is ${mesa_version:-not installed} after installing; Dawn needs lavapipe from Mesa >= $MIN_MESA_VERSION"
fi
