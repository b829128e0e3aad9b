#!/usr/bin/env bash
# Regenerate the hash-checked locks the README's set-up installs from: requirements/lock.txt (the project with
# its dev, ray and server extras, every transitive dependency, and the build backend) and
# requirements/nodeps.txt (facenet-pytorch, whose stale pins are skipped with --no-deps).
# Update on purpose: run this, run the test tier, and commit the two files with what moved.
# Target: CPython 3.11 on Linux x86-64 (manylinux_2_28). Needs uv (`pip install uv`).
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-uv}
common=(--generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 --quiet
        --custom-compile-command "scripts/lock.sh")
"$uv" pip compile "${common[@]}" pyproject.toml requirements/build.in \
  --extra dev --extra ray --extra server -o requirements/lock.txt
"$uv" pip compile "${common[@]}" --no-deps requirements/nodeps.in -o requirements/nodeps.txt
echo "wrote requirements/lock.txt ($(grep -c '^[a-z]' requirements/lock.txt) packages) and requirements/nodeps.txt"
