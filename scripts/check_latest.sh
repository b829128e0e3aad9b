#!/usr/bin/env bash
# Does the newest release that pyproject.toml's ranges admit break facequant? Builds a throwaway venv from the
# ranges alone (no lock), prints every resolved version that differs from requirements/lock.txt, then runs the
# unit tier there and prints which tests fail. Not part of CI, which installs from the lock to stay reproducible.
# Usage: scripts/check_latest.sh [extra pytest args]    (KEEP=1 keeps the venv and prints its path)
set -uo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d -t facequant-latest-XXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$venv"' EXIT
python3.11 -m venv "$venv"
"$venv/bin/python" -m pip install -q -e ".[dev,ray,server]" 2>&1 | grep -v "is ignored: it is neither" || true
"$venv/bin/python" -m pip install -q --no-deps facenet-pytorch==2.6.0 2>&1 | grep -v "is ignored: it is neither" || true
echo "== resolved versions that differ from requirements/lock.txt"
"$venv/bin/python" - <<'PY'
from facequant.machine import installed_versions, locked_versions
locked, now = locked_versions(), installed_versions()
moved = [f"  {n}: lock {v} -> {now.get(n, 'absent')}" for n, v in sorted(locked.items()) if now.get(n) != v]
added = [f"  {n}: new {now[n]}" for n in sorted(set(now) - set(locked)) if n not in ("facequant", "facenet-pytorch", "pip")]
print("\n".join(moved + added) or "  none")
PY
echo "== unit tier on the newest versions"
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/unit "$@" | tee "$venv/pytest.log" | tail -n 30
status=${PIPESTATUS[0]}
echo "== failing tests"
grep -E "^(FAILED|ERROR) " "$venv/pytest.log" || echo "  none"
[ "${KEEP:-0}" = 1 ] && echo "venv kept at $venv"
exit "$status"
