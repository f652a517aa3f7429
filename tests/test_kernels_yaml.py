"""YAML kernel files: the shipped examples, the format, file:line errors, search order, lint."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from convcli.errors import KernelError
from convcli.kernels import (
    Finding,
    find_kernel_files,
    kernel_search_dirs,
    lint_kernel_file,
    load_kernel,
    load_kernel_file,
    read_kernel_file,
)

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "kernels").glob("*.y*ml"))


def write(tmp_path: Path, text: str, name: str = "k.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def error_of(path: Path) -> KernelError:
    with pytest.raises(KernelError) as info:
        load_kernel_file(path)
    return info.value


# --------------------------------------------------------------------------- shipped examples


def test_there_are_at_least_eight_examples() -> None:
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_loads_and_lints_clean(path: Path) -> None:
    kernel = load_kernel_file(path)
    assert kernel.source == str(path)
    assert np.all(np.isfinite(kernel.weights))
    assert kernel.description
    findings = lint_kernel_file(path)
    assert [f for f in findings if f.severity != "info"] == []
    assert any(f.severity == "info" for f in findings)


def test_example_custom_edge() -> None:
    k = load_kernel_file(REPO / "kernels" / "my-edge.yaml")
    assert k.name == "my-edge"
    np.testing.assert_array_equal(k.weights, [[-1, 0, 1], [-3, 0, 3], [-1, 0, 1]])
    assert k.normalize == "none" and k.flip is False and k.origin is None


def test_example_bank() -> None:
    k = load_kernel_file(REPO / "kernels" / "compass-bank.yaml")
    assert k.kind == "bank"
    assert k.shape == (4, 3, 3)
    assert k.labels == ("east", "south", "south-east", "north-east")
    np.testing.assert_array_equal(k.weights[1], [[-1, -1, -1], [0, 0, 0], [1, 1, 1]])


def test_example_rgb_layer() -> None:
    k = load_kernel_file(REPO / "kernels" / "rgb-layer.yaml")
    assert k.kind == "layer"
    assert k.shape == (2, 3, 3, 3)  # c_out=2, c_in=3
    assert k.weights[0, :, 1, 1].tolist() == [0.299, 0.587, 0.114]
    assert k.bias == (0.0, 0.5)
    assert (k.stride, k.padding, k.activation) == (1, "same", "relu")


def test_example_non_centred_origin() -> None:
    k = load_kernel_file(REPO / "kernels" / "shift-down-right.yaml")
    assert k.origin == (0, 0)
    np.testing.assert_allclose(k.weights, 0.25)
    assert k.padding == "valid"


def test_example_sharpen_with_scale() -> None:
    k = load_kernel_file(REPO / "kernels" / "sharpen-strong.yaml")
    assert (k.normalize, k.scale) == ("sum", 1.5)
    np.testing.assert_allclose(k.weights, 1.5 * np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]))
    assert k.weights.sum() == pytest.approx(1.5)


def test_example_emboss_with_bias() -> None:
    k = load_kernel_file(REPO / "kernels" / "emboss-45.yaml")
    assert k.bias == 0.5
    assert k.weights.sum() == 1.0


def test_example_sum_normalised_blur() -> None:
    k = load_kernel_file(REPO / "kernels" / "binomial-blur.yaml")
    b = np.array([1, 4, 6, 4, 1]) / 16
    np.testing.assert_allclose(k.weights, np.outer(b, b))


def test_example_l1_normalised_zero_sum() -> None:
    k = load_kernel_file(REPO / "kernels" / "ridge-l1.yaml")
    assert np.abs(k.weights).sum() == pytest.approx(1.0)
    assert k.weights.sum() == pytest.approx(0.0)


def test_example_layer_defaults_and_yml_suffix() -> None:
    k = load_kernel_file(REPO / "kernels" / "strided-down.yml")
    assert (k.stride, k.padding, k.dilation, k.activation) == (2, "same", 1, None)


def test_example_flip_is_recorded_not_applied() -> None:
    k = load_kernel_file(REPO / "kernels" / "flip-demo.yaml")
    assert k.flip is True
    np.testing.assert_array_equal(k.weights, [[0, -1, 1]])  # as written: conv2d does the flip


# --------------------------------------------------------------------------- the format


def test_name_defaults_to_the_file_stem_and_defaults_are_none(tmp_path: Path) -> None:
    k = load_kernel_file(write(tmp_path, "weights: [[1, 2], [3, 4]]\n", "corner.yaml"))
    assert k.name == "corner"
    assert k.kind == "2d"
    assert (k.stride, k.padding, k.dilation, k.activation, k.bias) == (None,) * 5
    assert k.extra["warnings"] == ()


def test_normalize_l1_and_scale(tmp_path: Path) -> None:
    k = load_kernel_file(write(tmp_path, "weights: [[-1, 3]]\nnormalize: l1\nscale: 2\n"))
    np.testing.assert_allclose(k.weights, [[-0.5, 1.5]])


def test_layer_normalizes_per_output_channel(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        weights:
          - [[[1, 1]], [[2, 0]]]
          - [[[3, 3]], [[0, 2]]]
        normalize: sum
        """,
    )
    k = load_kernel_file(path)
    assert k.shape == (2, 2, 1, 2)
    np.testing.assert_allclose(k.weights.reshape(2, -1).sum(axis=1), [1.0, 1.0])


def test_bank_members_take_top_level_defaults_and_own_bias(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        normalize: sum
        kernels:
          - weights: [[1, 1]]
            bias: 0.25
          - name: right
            weights: [[0, 2]]
            scale: 3
        """,
        "pair.yaml",
    )
    k = load_kernel_file(path)
    assert k.labels == ("pair-1", "right")
    np.testing.assert_allclose(k.weights, [[[0.5, 0.5]], [[0.0, 3.0]]])
    assert k.bias == (0.25, 0.0)


@pytest.mark.parametrize("word", ["center", "centre"])
def test_origin_center_is_none(tmp_path: Path, word: str) -> None:
    assert load_kernel_file(write(tmp_path, f"weights: [[1]]\norigin: {word}\n")).origin is None


def test_layer_defaults_accept_pairs_and_leaky_relu(tmp_path: Path) -> None:
    text = "weights: [[1]]\nstride: [2, 1]\npadding: [0, 1, 0, 1]\nactivation: leaky-relu:0.2\n"
    k = load_kernel_file(write(tmp_path, text))
    assert k.stride == (2, 1) and k.padding == (0, 1, 0, 1) and k.activation == "leaky-relu:0.2"


# --------------------------------------------------------------------------- errors with file:line


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        # YAML syntax: the line comes from the parser's problem mark
        ("name: x\nweights: [[1, 2]\nscale: 2\n", 3, "invalid YAML: expected ',' or ']'"),
        ("weights:\n  - [1, 2]\n   - [3, 4]\n", 3, "invalid YAML:"),
        ("name: a\n  scale: 2\n", 2, "invalid YAML: mapping values are not allowed here"),
        # not a mapping
        ("- [1, 2]\n- [3, 4]\n", 1, "must be a mapping (key: value lines), got a list"),
        ("just text\n", 1, "must be a mapping (key: value lines), got a single value"),
        # missing / empty weights
        ("name: x\ndescription: nothing\n", 1, "has no 'weights' (or 'kernels' for a bank)"),
        ("name: x\nweights:\n", 2, "weights is empty"),
        ("name: x\nweights: []\n", 2, "weights is empty"),
        ("weights:\n  - [1, 2]\n  - []\n", 3, "weights row 2 is empty"),
        ("weights: 3\n", 1, "weights must be a list of rows"),
        # ragged rows (the SPEC's example)
        (
            "name: edge\ndescription: d\nnormalize: none\nweights:\n  - [-1, 0, 1]\n  - [-2, 0]\n",
            6,
            "weights row 2 has 2 numbers, row 1 has 3",
        ),
        ("weights:\n  - [1, 2]\n  - 3\n", 3, "weights row 2 is a number, row 1 is a list"),
        # non-numbers
        (
            "weights:\n  - [1, 2]\n  - [3, x]\n",
            3,
            "weights row 2, column 2 must be a number, got 'x'",
        ),
        ("weights: [[1, true]]\n", 1, "weights row 1, column 2 must be a number, got 'true'"),
        ("weights: [[1, '2']]\n", 1, "weights row 1, column 2 must be a number, got '2'"),
        # NaN / inf
        (
            "weights:\n  - [1, .nan]\n",
            2,
            "weights row 1, column 2 must be a finite number, got .nan",
        ),
        (
            "weights:\n  - [1, 2]\n  - [-.inf, 2]\n",
            3,
            "row 2, column 1 must be a finite number, got -.inf",
        ),
        # dimensions
        (
            "weights: [1, 2, 3]\n",
            1,
            "weights is a flat list of 3 numbers (1-D); a kernel needs rows",
        ),
        ("weights: [[[1]], [[2]]]\n", 1, "weights is 3-D (2×1×1)"),
        ("weights: [[[[[1]]]]]\n", 1, "weights is 5-D (1×1×1×1×1)"),
        # 4-D: the path names the slice
        (
            "weights:\n  - - [[1, 2], [3, 4]]\n    - [[1, 2], [3]]\n",
            3,
            "weights[0][1] row 2 has 1 numbers, row 1 has 2",
        ),
        (
            "weights:\n  - [[[1]], [[2]]]\n  - [[[1]]]\n",
            3,
            "weights[1] is 1×1×1, weights[0] is 2×1×1",
        ),
        # normalising
        (
            "weights: [[-1, 0, 1]]\n\nnormalize: sum\n",
            3,
            "normalize: sum, but the weights of k sum to 0",
        ),
        ("weights: [[0, 0]]\nnormalize: l1\n", 2, "normalize: l1, but every weight of k is 0"),
        (
            "weights: [[1]]\nnormalize: max\n",
            2,
            "normalize must be one of none, sum, l1; got 'max'",
        ),
        ("weights: [[1]]\nnormalize: summ\n", 2, "(did you mean 'sum'?)"),
        (
            "weights:\n  - [[[1, -1]]]\n  - [[[1, 1]]]\nnormalize: sum\n",
            4,
            "weights of output channel 0 of k sum to 0",
        ),
        # other fields
        ("weights: [[1]]\nscale: big\n", 2, "scale must be a number, got 'big'"),
        ("weights: [[1]]\nscale: .inf\n", 2, "scale must be a finite number, got .inf"),
        ("weights: [[1]]\nbias: [1, x]\n", 2, "bias item 2 must be a number, got 'x'"),
        (
            "weights: [[1, 2]]\norigin: [0, 2]\n",
            2,
            "origin col 2 is outside the 1×2 kernel (0 to 1)",
        ),
        ("weights: [[1, 2]]\norigin: [0]\n", 2, "origin must be 'center' or [row, col]"),
        (
            "weights: [[1, 2]]\norigin: left\n",
            2,
            "origin must be 'center' or [row, col], got 'left'",
        ),
        ("weights: [[1]]\nflip: maybe\n", 2, "flip must be true or false, got 'maybe'"),
        ("weights: [[1]]\nstride: 0\n", 2, "stride must be >= 1, got 0"),
        ("weights: [[1]]\npadding: sometimes\n", 2, "padding must be valid, same, full"),
        ("weights: [[1]]\nactivation: rleu\n", 2, "(did you mean 'relu'?)"),
        ("weights: [[1]]\nactivation: relu:2\n", 2, "activation relu takes no parameter"),
        (
            "weights:\n  - [[[1]]]\n  - [[[1]]]\nbias: [1, 2, 3]\n",
            4,
            "bias has 3 values but the layer has 2",
        ),
        ("name: [a, b]\nweights: [[1]]\n", 1, "name must be text"),
        # banks
        (
            "weights: [[1]]\nkernels:\n  - weights: [[1]]\n",
            2,
            "either 'weights' (one kernel) or 'kernels'",
        ),
        ("kernels: []\n", 1, "kernels is an empty list"),
        ("kernels: {weights: [[1]]}\n", 1, "kernels must be a list of kernels"),
        ("kernels:\n  - [1, 2]\n", 2, "kernels[0] must be a mapping"),
        ("kernels:\n  - weights: [[1]]\n  - name: b\n", 3, "kernels[1] has no 'weights'"),
        (
            "kernels:\n  - weights: [[1, 2], [3, 4]]\n  - weights: [[1, 2, 3]]\n",
            3,
            "kernels[1] is 1×3 but kernels[0] is 2×2; all members of a bank must be the same size",
        ),
        (
            "kernels:\n  - weights:\n      - [1, 2]\n      - [3]\n",
            4,
            "kernels[0] weights row 2 has 1 numbers, row 1 has 2",
        ),
        ("kernels:\n  - weights: [[[[1]]]]\n", 2, "kernels[0] weights must be 2-D rows in a bank"),
        (
            "kernels:\n  - weights: [[1, -1]]\n    normalize: sum\n",
            3,
            "normalize: sum, but the weights of k-1 sum to 0",
        ),
        ("kernels:\n  - weights: [[1]]\nbias: [1, 2]\n", 3, "bias has 2 values but the bank has 1"),
        (
            "bias: [1]\nkernels:\n  - weights: [[1]]\n    bias: 2\n",
            1,
            "bias is given both at the top (a list) and on members",
        ),
        # empty file
        ("", None, "the file is empty"),
        ("# only a comment\n", None, "the file is empty"),
    ],
)
def test_errors_name_file_line_and_problem(
    tmp_path: Path, text: str, line: int | None, message: str
) -> None:
    path = write(tmp_path, text)
    err = error_of(path)
    assert message in err.message
    assert err.file == str(path)
    assert err.line == line
    where = str(path) if line is None else f"{path}:{line}"
    assert str(err).startswith(f"{where}: ")


def test_spec_example_message_exactly(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: e\nnormalize: none\nscale: 1\nweights:\n  - [1, 2, 3]\n  - [4, 5]\n",
        "edge.yaml",
    )
    assert str(error_of(path)) == f"{path}:6: weights row 2 has 2 numbers, row 1 has 3"


def test_missing_weights_points_at_a_misspelt_key(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "name: x\nweigths:\n  - [1]\n"))
    assert err.line == 2
    assert err.message == "the kernel file has no 'weights' (is 'weigths' a typo for 'weights'?)"


def test_missing_file_and_unreadable_bytes(tmp_path: Path) -> None:
    err = error_of(tmp_path / "nope.yaml")
    assert err.message == "no such file" and err.line is None
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"name: caf\xe9\nweights: [[1]]\n")
    assert "cannot read the file" in error_of(bad).message


def test_multiple_documents_are_an_error(tmp_path: Path) -> None:
    err = error_of(write(tmp_path, "weights: [[1]]\n---\nweights: [[2]]\n"))
    assert err.line == 2
    assert "invalid YAML: but found another document" in err.message


# --------------------------------------------------------------------------- warnings (not raised)


def test_unknown_keys_are_warnings_with_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, "weights: [[1]]\nnormalise: sum\ncolour: red\n")
    kernel, findings = read_kernel_file(path)
    assert kernel.normalize == "none"  # the misspelt key was ignored
    assert findings == [
        Finding(
            "warning", "unknown key 'normalise' (did you mean 'normalize'?); ignored", str(path), 2
        ),
        Finding("warning", "unknown key 'colour'; ignored", str(path), 3),
    ]
    assert kernel.extra["warnings"] == tuple(str(f) for f in findings)
    assert (
        str(findings[0])
        == f"{path}:2: warning: unknown key 'normalise' (did you mean 'normalize'?); ignored"
    )


def test_unknown_member_key_and_duplicates_warn(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        scale: 1
        scale: 2
        kernels:
          - weights: [[1]]
            orign: [0, 0]
          - weights: [[2]]
            name: k-1
        """,
    )
    kernel, findings = read_kernel_file(path)
    assert kernel.scale == 2
    messages = [(f.line, f.message) for f in findings]
    assert (2, "duplicate key 'scale' (first on line 1); the last wins") in messages
    assert (5, "unknown key 'orign'; ignored") in messages
    assert (6, "kernels[1] repeats the name 'k-1'") in messages


# --------------------------------------------------------------------------- search order


def test_load_kernel_reads_a_path(tmp_path: Path) -> None:
    path = write(tmp_path, "weights: [[2]]\n", "two.yaml")
    assert load_kernel(str(path)).weights.tolist() == [[2.0]]
    assert load_kernel(path).source == str(path)


def test_builtin_wins_over_a_yaml_file_of_the_same_name(tmp_path: Path) -> None:
    write(tmp_path, "weights: [[2]]\n", "sobel-x.yaml")
    assert load_kernel("sobel-x", kernel_dirs=[tmp_path]).source == "built-in"


def test_kernel_dirs_then_env_then_cwd_kernels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, env1, env2, cwd = (tmp_path / d for d in ("first", "env1", "env2", "cwd"))
    for d in (first, env1, env2, cwd / "kernels"):
        d.mkdir(parents=True)
    write(first, "weights: [[1]]\n", "a.yaml")
    write(env1, "weights: [[2]]\n", "a.yaml")
    write(env1, "weights: [[2]]\n", "b.yml")
    write(env2, "weights: [[3]]\n", "b.yaml")
    write(env2, "weights: [[3]]\n", "c.yaml")
    write(cwd / "kernels", "weights: [[4]]\n", "c.yaml")
    write(cwd / "kernels", "weights: [[4]]\n", "d.yaml")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("CONVCLI_KERNEL_PATH", os.pathsep.join([str(env1), str(env2)]))
    dirs = [first]
    assert load_kernel("a", kernel_dirs=dirs).weights.item() == 1  # --kernel-dir first
    assert load_kernel("a").weights.item() == 2  # then $CONVCLI_KERNEL_PATH
    assert load_kernel("b", kernel_dirs=dirs).weights.item() == 2  # .yml found, earlier dir wins
    assert load_kernel("c", kernel_dirs=dirs).weights.item() == 3  # second env dir before ./kernels
    assert load_kernel("d", kernel_dirs=dirs).weights.item() == 4  # ./kernels last
    assert load_kernel("d").source == str(Path("kernels") / "d.yaml")
    assert kernel_search_dirs(dirs) == [first, env1, env2, Path("kernels")]
    assert [f.stem for f in find_kernel_files(dirs)] == ["a", "b", "c", "d"]


def test_unknown_name_suggests_yaml_stems_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVCLI_KERNEL_PATH", raising=False)
    write(tmp_path, "weights: [[1]]\n", "ridge-detector.yaml")
    with pytest.raises(KernelError, match=r"did you mean 'ridge-detector'"):
        load_kernel("ridge-detectr", kernel_dirs=[tmp_path])


def test_a_missing_path_says_so(tmp_path: Path) -> None:
    with pytest.raises(KernelError, match="no such kernel file: .*missing.yaml"):
        load_kernel(str(tmp_path / "missing.yaml"))
    with pytest.raises(KernelError, match="no such kernel file: other.yml"):
        load_kernel("other.yml")


def test_yaml_errors_propagate_through_load_kernel(tmp_path: Path) -> None:
    write(tmp_path, "weights: [[1, 2], [3]]\n", "broken.yaml")
    with pytest.raises(
        KernelError, match=r"broken.yaml:1: weights row 2 has 1 numbers, row 1 has 2"
    ):
        load_kernel("broken", kernel_dirs=[tmp_path])


# --------------------------------------------------------------------------- lint


def severities(findings: list[Finding]) -> list[str]:
    return [f.severity for f in findings]


def test_lint_reports_errors_as_findings(tmp_path: Path) -> None:
    path = write(tmp_path, "weights:\n  - [1, 2, 3]\n  - [4, 5]\n")
    assert lint_kernel_file(path) == [
        Finding("error", "weights row 2 has 2 numbers, row 1 has 3", str(path), 3)
    ]


def test_lint_keeps_warnings_before_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "colour: red\nweights: [[1, .nan]]\n")
    assert severities(lint_kernel_file(path)) == ["warning", "error"]


def test_lint_missing_file(tmp_path: Path) -> None:
    (finding,) = lint_kernel_file(tmp_path / "nope.yaml")
    assert (finding.severity, finding.message, finding.line) == ("error", "no such file", None)


def test_lint_even_kernel_with_same_padding(tmp_path: Path) -> None:
    path = write(tmp_path, "weights: [[1, 1], [1, 1]]\n\npadding: same\n")
    findings = lint_kernel_file(path)
    (warning,) = [f for f in findings if f.severity == "warning"]
    assert warning.line == 3
    assert warning.message.startswith("even-sized kernel (2×2) with padding: same")
    odd = write(tmp_path, "weights: [[1, 1, 1]]\npadding: same\n", "odd.yaml")
    assert "warning" not in severities(lint_kernel_file(odd))


def test_lint_all_zero_weights_warns(tmp_path: Path) -> None:
    findings = lint_kernel_file(write(tmp_path, "weights: [[0, 0], [0, 0]]\n"))
    assert Finding("warning", "every weight is 0", findings[0].file, 1) in findings


def test_lint_info_separable_and_symmetric(tmp_path: Path) -> None:
    path = write(tmp_path, "name: sx\nweights:\n  - [-1, 0, 1]\n  - [-2, 0, 2]\n  - [-1, 0, 1]\n")
    (info,) = lint_kernel_file(path)
    assert info.severity == "info" and info.line == 2
    assert (
        info.message
        == "sx: 3×3, sum 0, separable (rank 1): [1, 2, 1]ᵀ × [-1, 0, 1]; symmetric (up-down)"
    )


def test_lint_info_not_separable_rotational(tmp_path: Path) -> None:
    (info,) = lint_kernel_file(write(tmp_path, "weights: [[0, 1, 0], [1, -4, 1], [0, 1, 0]]\n"))
    assert info.message == "k: 3×3, sum 0, rank 2, not separable; symmetric (rotational)"


def test_lint_info_per_bank_member_at_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "kernels:\n  - name: a\n    weights: [[1, 2]]\n  - name: b\n    weights: [[2, 1]]\n",
    )
    infos = lint_kernel_file(path)
    assert [(f.line, f.message.split(":")[0]) for f in infos] == [(3, "a"), (5, "b")]
    assert "symmetric" not in infos[0].message


def test_lint_info_for_a_layer(tmp_path: Path) -> None:
    (info,) = lint_kernel_file(REPO / "kernels" / "rgb-layer.yaml")
    assert info.message == "rgb-layer: layer 2 out × 3 in × 3×3; 5 of 6 slices separable"
