#!/usr/bin/env bash
# usage: .ci/venv.sh SET  (SET: newest | lowest) -> prints the path of a ready venv for that set.
# The venv lives outside the clone (the torch wheels alone are several GB), keyed by a hash of
# what determines its contents: pyproject.toml's [project] table (less its version and
# requires-python), the set's constraints file .ci/SET.txt and the Python version. A venv is
# marked complete only after every install succeeded; an incomplete one is rebuilt from
# scratch. A reused venv gets this clone's editable install.
set -euo pipefail
cd "$(dirname "$0")/.."
set_name=$1
constraints="$PWD/.ci/$set_name.txt"
[ -f "$constraints" ] || { echo "venv.sh: no constraints file $constraints" >&2; exit 2; }
case $set_name in
    newest) extras="dev,docs"; more="arviz-stats arviz-base" ;;   # the ArviZ 1.x code path
    lowest) extras="dev"; more="" ;;
    *) echo "venv.sh: unknown set $set_name (newest or lowest)" >&2; exit 2 ;;
esac
key=$(python3.11 - "$constraints" "$extras" "$more" <<'PY'
import hashlib, json, sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
project.pop("version", None)
project.pop("requires-python", None)   # the interpreter's own version is part of the key
parts = [json.dumps(project, sort_keys=True), open(sys.argv[1]).read(), sys.argv[2], sys.argv[3],
         sys.version.split()[0]]
print(hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16])
PY
)
venv="$HOME/.cache/probnn/venv-$set_name-$key"
# The set's constraints replace any machine-wide pip constraint (one may cap torch).
export PIP_CONSTRAINT="$constraints"
if [ ! -f "$venv/.complete" ]; then
    echo "building $venv (set $set_name)" >&2
    rm -rf "$venv"
    python3.11 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip setuptools wheel >&2
    # shellcheck disable=SC2086
    "$venv/bin/python" -m pip install --quiet -e ".[$extras]" $more >&2
    touch "$venv/.complete"
else
    "$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e . >&2
fi
echo "$venv"
