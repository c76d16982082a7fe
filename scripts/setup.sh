# Shared set-up for scripts/play and scripts/test: system packages, then the virtualenv.
# Sourced, not run. Installs what is missing when run as root; otherwise names it and stops.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
EXTRAS="${TIMBREL_EXTRAS:-}"
SYSTEM_PACKAGES=(libportaudio2 libsndfile1 jackd2 libjack-jackd2-0 fluidsynth fluid-soundfont-gm sox espeak-ng python3-venv
                 liblilv-0-0)
# The browser tests drive Debian's chromium, the allocation test builds its counter with gcc, and
# the LV2 tests play real plugins from Debian (x42, LSP, Dragonfly); playing needs none of them.
case ",$EXTRAS," in *,dev,*) SYSTEM_PACKAGES+=(chromium gcc libc6-dev x42-plugins lsp-plugins-lv2 dragonfly-reverb-lv2) ;; esac

say() { printf 'timbrel setup: %s\n' "$*" >&2; }

missing_packages() {
  command -v dpkg-query >/dev/null 2>&1 || return 0
  local pkg
  for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || printf '%s ' "$pkg"
  done
}

install_system_packages() {
  local missing
  missing="$(missing_packages)"
  [ -z "$missing" ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    say "not a Debian/Ubuntu system; install the equivalents of: $missing"
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    say "missing system packages. Install them, then run this again:"
    say "  sudo apt-get install -y $missing"
    exit 1
  fi
  say "installing system packages: $missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

pick_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3.10 python3; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 13)))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  say "timbrel needs Python 3.10 to 3.13; set PYTHON=/path/to/python3.x"
  exit 1
}

setup_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$(pick_python)" -m venv "$VENV"
  fi
  local spec=".${EXTRAS:+[$EXTRAS]}"
  local stamp="$VENV/.timbrel-installed"
  local want
  want="$(cat "$ROOT/pyproject.toml" - <<<"$spec" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing timbrel$spec into $VENV (first run takes a few minutes)"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    (cd "$ROOT" && "$VENV/bin/python" -m pip install -q -e "$spec")
    echo "$want" >"$stamp"
  fi
}

install_system_packages
setup_venv
