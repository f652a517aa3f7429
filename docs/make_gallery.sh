#!/usr/bin/env bash
# Regenerate the README gallery (docs/gallery/*.png) with convcli itself.
#
#   docs/make_gallery.sh            # from anywhere; needs `convcli` on PATH
#   CONVCLI="python -m convcli" docs/make_gallery.sh
#
# Every picture is at most 225 px wide: the sample photo is first shrunk 2x by
# convcli's own average pooling, and every output is computed from that.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
convcli=${CONVCLI:-convcli}
cd "$repo"
out=docs/gallery
mkdir -p "$out"

run() {
    echo "+ convcli $*" >&2
    $convcli "$@" --force -q
}

# The input: samples/chelsea.jpg (451x300) average-pooled 2x2 -> 225x150 RGB.
run pool samples/chelsea.jpg --op avg --size 2 -o "$out/chelsea.png"

# Blur: a 9x9 Gaussian, sigma 3, on every colour channel (one RGB picture).
run convolve "$out/chelsea.png" -k gaussian:9:3 -o "$out/chelsea.blur.png"

# Sharpen: the kernel sums to 1, so the result maps like the photo (clipped to [0, 1]).
run convolve "$out/chelsea.png" -k sharpen -o "$out/chelsea.sharpen.png"

# Edges: the gradient magnitude sqrt(gx^2 + gy^2) of the Sobel pair on the luma
# (auto: 0 black, the 99.5th percentile white).
run convolve "$out/chelsea.png" -k sobel --gray --combine magnitude -o "$out/chelsea.edges.png"

# Binary edges: the same magnitude, thresholded by Otsu's method.
run convolve "$out/chelsea.png" -k sobel --gray --combine magnitude --threshold otsu \
    -o "$out/chelsea.edges-otsu.png"

# Emboss: sums to 1 as well, so flat areas keep their grey and the relief is clipped.
run convolve "$out/chelsea.png" -k emboss --gray -o "$out/chelsea.emboss.png"

# Feature maps: the 4-kernel compass bank (kernels/compass-bank.yaml), ReLU, 2x2 max
# pool -> 4 maps of 112x75; --montage draws them as one labelled grid, here in viridis
# with one mapping for all maps (--range-scope input) and a colour bar of its values.
maps="$(mktemp -d)"
trap 'rm -rf "$maps"' EXIT
run convolve "$out/chelsea.png" -k kernels/compass-bank.yaml --gray --activation relu \
    --pool max --montage --cmap viridis --range-scope input --colorbar -o "$maps"
mv "$maps/chelsea.compass-maxpool.montage.png" "$out/chelsea.compass-montage.png"

# A trained network (docs/models/tiny-cnn.onnx, made by docs/make_tiny_cnn.py; needs
# convcli[models]): its first layer's 16 filters as RGB tiles, and the maps that layer
# (conv1 + BatchNorm + ReLU, up to the node /Relu) makes of the photo.
echo "+ convcli kernels show docs/models/tiny-cnn.onnx --png $out/tiny-cnn.conv1.png" >&2
$convcli kernels show docs/models/tiny-cnn.onnx --png "$out/tiny-cnn.conv1.png" --force >/dev/null
run run docs/models/tiny-cnn.onnx "$out/chelsea.png" --normalize imagenet --until /Relu \
    --montage -o "$maps"
mv "$maps/chelsea.tiny-cnn.montage.png" "$out/chelsea.tiny-cnn-montage.png"

ls -l "$out"
