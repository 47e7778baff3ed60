#!/usr/bin/env bash
# `make bench`: bake the template with its defaults, install the baked project and the peer SDKs into
# build/bench-venv, then count whole requests in instructions with callgrind, and run the flag, dashboard,
# targeting, fan-out, exposure and OpenTelemetry benchmarks, which run offline: they refuse every network
# connection and report any attempt. Last, the demo benchmark times a
# fresh clone's `make demo` to its first page, twice (its set-up may use the package registry, as
# `make demo` does; the benchmark itself talks to 127.0.0.1 only).
#
# PYTHON=/path/to/python picks the interpreter; by default the template's default Python version
# (python3.X on PATH, or pyenv's), else python3. The bake's python_version answer is set to that version.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build"
VENV="$BUILD/bench-venv"
BAKE="$BUILD/bench"
cd "$ROOT"

want="$(python3 -c 'import json; print(json.load(open("cookiecutter.json"))["python_version"][0])')"
is_version() { "$1" -c "import sys; sys.exit('%d.%d' % sys.version_info[:2] != '$2')" >/dev/null 2>&1; }
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    for candidate in "python$want" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want".*/bin/python; do
        if is_version "$candidate" "$want"; then PY="$candidate"; break; fi
    done
fi
PY="${PY:-python3}"
version="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

# uv when `make` found or fetched one (UV=...) or it is on PATH (seconds), else pip (a minute or two).
UV="${UV:-$(command -v uv || true)}"
install() {
    if [ -n "$UV" ]; then "$UV" pip install --quiet --python "$VENV/bin/python" "$@"
    else "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"; fi
}
if [ ! -x "$VENV/bin/python" ] || ! is_version "$VENV/bin/python" "$version"; then
    echo "== creating $VENV with Python $version"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
fi
echo "== installing cookiecutter and the peer SDKs (benchmarks/requirements.txt)"
install -r benchmarks/requirements.txt

echo "== baking the template (defaults, python_version=$version) into $BAKE"
rm -rf "$BAKE"
"$VENV/bin/cookiecutter" --no-input -f -o "$BAKE" "$ROOT" python_version="$version"
PROJECT="$(find "$BAKE" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
echo "== installing the baked project ($PROJECT)"
install -e "$PROJECT[postgres,redis]"

# Bytecode now, at full speed: bench_instructions runs Python with PYTHONDONTWRITEBYTECODE under callgrind,
# which would otherwise compile every module it imports there, tens of times slower, on every run.
"$VENV/bin/python" -m compileall -q -j 0 "$VENV/lib" "$PROJECT" >/dev/null

# OpenTelemetry in a folder of its own, on the path only where a benchmark asks for it: installed in the
# venv, the hook would be on in every benchmark (it connects when opentelemetry-api is importable).
OTEL="$BUILD/bench-otel"
if [ -n "$UV" ]; then "$UV" pip install --quiet --python "$VENV/bin/python" --target "$OTEL" "opentelemetry-sdk==1.45.2"
else "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --target "$OTEL" "opentelemetry-sdk==1.45.2"; fi

echo
# Instructions first: callgrind counts the same however busy the machine is (valgrind: `make bench` installs it).
# OpenTelemetry on the path: the apps with this round's features on have its hook on (no exporter).
if command -v valgrind >/dev/null; then
    PYTHONPATH="$OTEL" "$VENV/bin/python" benchmarks/bench_instructions.py --project "$PROJECT"
else
    echo "valgrind is not installed: no instruction counts (Debian: apt-get install valgrind)"
fi
echo
"$VENV/bin/python" benchmarks/bench_flags.py --project "$PROJECT"
echo
"$VENV/bin/python" benchmarks/bench_dashboard.py --project "$PROJECT"
echo
"$VENV/bin/python" benchmarks/bench_targeting.py --project "$PROJECT"
echo
"$VENV/bin/python" benchmarks/bench_segments.py --project "$PROJECT"
echo
"$VENV/bin/python" benchmarks/bench_fanout.py --project "$PROJECT"
"$VENV/bin/python" benchmarks/bench_exposures.py --project "$PROJECT"
echo
PYTHONPATH="$OTEL" "$VENV/bin/python" benchmarks/bench_telemetry.py --project "$PROJECT"
echo
"$VENV/bin/python" benchmarks/bench_demo.py
