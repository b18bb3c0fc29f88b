#!/usr/bin/env bash
# Installs the Debian libraries MuJoCo needs to render headless on the CPU (EGL + Mesa llvmpipe),
# plus ffmpeg-free video writing is handled by imageio-ffmpeg's bundled binary.
set -euo pipefail
need=()
for pkg in libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
  echo "Missing OS packages: ${need[*]}. Install them (apt-get install ${need[*]}) and re-run." >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "Installing OS packages for headless rendering: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
