#!/usr/bin/env bash
# Build dist/goapp: one executable file carrying Python, every dependency, the compiled
# rules core (goapp._core) and the package data (SQL migrations, KataGo configs, web app).
#
#   appliance/build.sh            # uses .venv/bin/python (make install creates it)
#   PYTHON=/path/python appliance/build.sh
#
# What goes in is in appliance/goapp.spec. Work files go to build/pyinstaller.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-$root/.venv/bin/python}"

if ! "$python" -c 'import PyInstaller' 2>/dev/null; then
    echo "installing PyInstaller into $("$python" -c 'import sys; print(sys.prefix)')"
    "$python" -m pip install --quiet "pyinstaller>=6.0"
fi

# The binary must carry the compiled core: rebuild it if the .pyx changed.
"$python" setup.py --quiet build_ext --inplace

"$python" -m PyInstaller \
    --noconfirm \
    --log-level WARN \
    --workpath "$root/build/pyinstaller" \
    --distpath "$root/build/pyinstaller/dist" \
    "$root/appliance/goapp.spec"

# A goapp module PyInstaller could not compile (a syntax error) or find would only fail at
# run time, when first imported: refuse the build instead.
if grep -E "(missing|invalid) module named '?goapp" "$root/build/pyinstaller/goapp/warn-goapp.txt"; then
    echo "build.sh: goapp modules missing from the binary (see above)" >&2
    exit 1
fi

# Into place in one step: an interrupted build never leaves a half-written dist/goapp.
"$root/build/pyinstaller/dist/goapp" version
mkdir -p "$root/dist"
mv -f "$root/build/pyinstaller/dist/goapp" "$root/dist/goapp"
ls -l "$root/dist/goapp"
