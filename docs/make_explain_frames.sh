#!/usr/bin/env bash
# Regenerate docs/explain.gif and three of its frames (docs/explain-frame-{1,2,3}.png).
#
#   docs/make_explain_frames.sh     # from anywhere; needs `convcli` (and its Python) on PATH
#   CONVCLI="python -m convcli" docs/make_explain_frames.sh
#
# The walk is the README's: the default 6×6 patch of samples/camera.png, sobel-x, same
# padding, bias -0.2 (shown as -51 in 0–255 units), ReLU, 2×2 max pool: 47 frames
# (1 + 36 windows + 9 pooling windows + 1). The three frames are taken from the GIF itself:
# frame 9 (output[1, 2] fills in), frame 30 (output[4, 5]) and frame 41 (pooled[1, 1]).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
convcli=${CONVCLI:-convcli}
python=${PYTHON:-python3}
cd "$repo"

$convcli explain --bias -0.2 --activation relu --animate docs/explain.gif --force
$python - <<'PY'
from PIL import Image

with Image.open("docs/explain.gif") as gif:
    for n, index in enumerate((9, 30, 41), 1):
        gif.seek(index)
        gif.convert("RGB").save(f"docs/explain-frame-{n}.png", optimize=True)
        print(f"docs/explain-frame-{n}.png: frame {index}")
PY
