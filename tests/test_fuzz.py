"""Fuzzing the parsers and argument checks: bad input raises convcli's errors, nothing else.

Every parser a user can reach with text — YAML kernel files, pipeline files,
``--stride``/``--padding``/``--bias``/``--activation`` values, built-in kernel
specs — and the argument checks of ``conv2d``/``pool2d`` are fed random values.
They may accept a value or raise one of convcli's own errors (which are
``ValueError`` subclasses, so library users can catch the builtin type); any
other exception type is a bug. ``max_examples`` stay modest so the file runs
in well under 30 s.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from convcli import conv2d, pool2d
from convcli.errors import ConvcliError, KernelError, ParameterError, PipelineError
from convcli.kernels import lint_kernel_file, load_kernel, load_kernel_file
from convcli.kernels.builtins import builtin_names, parse_kernel_spec
from convcli.ops.activations import parse_activation
from convcli.pipeline import parse_bias
from convcli.pipeline.yamlfile import load_pipeline
from convcli.shapes import as_pair, parse_padding

FUZZ = settings(
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --------------------------------------------------------------------------- strategies

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
#: Values of any YAML-representable shape (lists, mappings, scalars), small.
yaml_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
numbers = st.one_of(
    st.integers(min_value=-5, max_value=9), st.floats(allow_nan=True, allow_infinity=True)
)
rows = st.lists(st.lists(numbers, min_size=0, max_size=4), min_size=0, max_size=4)

KERNEL_KEYS = [
    "name", "description", "weights", "kernels", "normalize", "scale", "bias", "origin",
    "flip", "stride", "padding", "dilation", "activation", "weigths", "kernel",
]  # fmt: skip
PIPE_KEYS = ["name", "description", "gray", "alpha", "dtype", "stages", "output", "stage"]
CONV_KEYS = [
    "kernel", "stride", "padding", "pad_mode", "pad-value", "dilation", "flip", "bias",
    "activation", "groups", "strid",
]  # fmt: skip
POOL_KEYS = ["op", "size", "stride", "padding", "ceil_mode", "count_include_pad", "sise"]
WORDS = ["same", "valid", "full", "reflect", "max", "avg", "relu", "sum", "l1", "center", ""]

#: Values that look like what the files hold, with the odd wrong one.
plausible = st.one_of(
    yaml_values,
    rows,
    st.sampled_from(WORDS),
    st.sampled_from(["sobel", "gaussian:3", "box:0", "nope", "gaussian::1e-300", "box:99999"]),
    st.lists(st.integers(min_value=-3, max_value=5), max_size=4),
)
kernel_docs = st.one_of(
    yaml_values,
    st.dictionaries(st.sampled_from(KERNEL_KEYS), plausible, max_size=6),
    st.fixed_dictionaries(
        {"weights": rows},
        optional={k: plausible for k in KERNEL_KEYS if k != "weights"},
    ),
    st.fixed_dictionaries(
        {
            "kernels": st.lists(
                st.fixed_dictionaries(
                    {"weights": rows},
                    optional={
                        "name": plausible,
                        "bias": plausible,
                        "scale": plausible,
                        "normalize": plausible,
                    },
                ),
                max_size=3,
            )
        }  # fmt: skip
    ),
)
conv_bodies = st.one_of(
    plausible, st.dictionaries(st.sampled_from(CONV_KEYS), plausible, max_size=4)
)
pool_bodies = st.one_of(
    plausible, st.dictionaries(st.sampled_from(POOL_KEYS), plausible, max_size=4)
)
steps = st.one_of(
    plausible,
    st.builds(lambda b: {"conv": b}, conv_bodies),
    st.builds(lambda b: {"pool": b}, pool_bodies),
)
pipeline_docs = st.one_of(
    yaml_values,
    st.dictionaries(st.sampled_from(PIPE_KEYS), plausible, max_size=4),
    st.fixed_dictionaries(
        {"stages": st.lists(steps, max_size=3)},
        optional={"gray": plausible, "alpha": plausible, "dtype": plausible, "output": plausible},
    ),
)
#: YAML-ish text: fragments of real syntax glued together, plus noise.
yaml_bits = st.sampled_from(
    [
        "weights:", "kernels:", "stages:", "- ", "  ", "\n", "[", "]", "{", "}", ",", ":",
        "&a ", "*a", "!!int ", "!!float ", "!!str ", "!!binary ", "!!python/object ", "!!foo ",
        "? ", "<<: ", "---", "...", "#", "'", '"', "|", ">", "\t", "~", ".nan", ".inf", "1",
        "-2", "0.5", "1e400", "sobel", "conv:", "pool:", "kernel:", "stride:", "padding:",
        "origin:", "flip:", "true", "null", "%YAML 1.1\n", "\x00", "\ufeff", "é",
    ]
)  # fmt: skip
yaml_texts = st.one_of(st.text(max_size=80), st.lists(yaml_bits, max_size=30).map("".join))


def _dump(doc: object) -> str:
    try:
        return yaml.safe_dump(doc, allow_unicode=True)
    except (yaml.YAMLError, ValueError):  # a value safe_dump cannot write
        assume(False)
        raise AssertionError from None


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


def _kernel_file_is_fine_or_kernel_error(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would be a second stderr line
        try:
            kernel = load_kernel_file(path)
        except KernelError as exc:
            assert "\n" not in str(exc), str(exc)
            assert str(exc).startswith(str(path)), str(exc)
        else:
            assert np.isfinite(kernel.weights).all()
        findings = lint_kernel_file(path)  # never raises
        assert all("\n" not in str(f) for f in findings)


# --------------------------------------------------------------------------- YAML kernels


@FUZZ
@given(text=yaml_texts)
def test_kernel_loader_on_yamlish_text(tmp_path: Path, text: str) -> None:
    _kernel_file_is_fine_or_kernel_error(_write(tmp_path, "k.yaml", text))


@FUZZ
@given(doc=kernel_docs)
def test_kernel_loader_on_random_structures(tmp_path: Path, doc: object) -> None:
    _kernel_file_is_fine_or_kernel_error(_write(tmp_path, "k.yaml", _dump(doc)))


# --------------------------------------------------------------------------- pipelines


def _pipeline_is_fine_or_pipeline_error(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            load_pipeline(path)
        except PipelineError as exc:
            assert "\n" not in str(exc), str(exc)
            assert str(exc).startswith(str(path)), str(exc)


@FUZZ
@given(text=yaml_texts)
def test_pipeline_loader_on_yamlish_text(tmp_path: Path, text: str) -> None:
    _pipeline_is_fine_or_pipeline_error(_write(tmp_path, "p.yaml", text))


@FUZZ
@given(doc=pipeline_docs)
def test_pipeline_loader_on_random_structures(tmp_path: Path, doc: object) -> None:
    _pipeline_is_fine_or_pipeline_error(_write(tmp_path, "p.yaml", _dump(doc)))


# --------------------------------------------------------------------------- option parsers

option_values = st.one_of(
    yaml_values,
    st.text(alphabet="0123456789,-x× .e+_", max_size=12),
    st.tuples(st.integers(-(2**70), 2**70), st.integers(-(2**70), 2**70)),
    st.lists(st.one_of(st.integers(-3, 2**65), st.floats(), st.text(max_size=2)), max_size=5),
    st.builds(np.int64, st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda a: np.array(a), st.lists(st.integers(-3, 5), max_size=4)),
)


@FUZZ
@given(value=option_values)
def test_as_pair_returns_two_bounded_ints_or_a_parameter_error(value: object) -> None:
    try:
        pair = as_pair(value, "stride")  # type: ignore[arg-type]
    except ParameterError as exc:
        assert "stride" in str(exc) and "\n" not in str(exc)
    else:
        assert len(pair) == 2 and all(type(v) is int and 1 <= v < 2**31 for v in pair)


@FUZZ
@given(value=option_values)
def test_parse_padding_returns_a_word_or_four_ints_or_a_parameter_error(value: object) -> None:
    try:
        pad = parse_padding(value)  # type: ignore[arg-type]
    except ParameterError as exc:
        assert "padding" in str(exc) and "\n" not in str(exc)
    else:
        assert pad in ("valid", "same", "full") or (
            len(pad) == 4 and all(type(v) is int and 0 <= v < 2**31 for v in pad)
        )


spec_params = st.one_of(
    st.text(alphabet="0123456789.-+eE:naif ", max_size=10),
    st.sampled_from(["1e-300", "1e300", "99999", "0", "-1", "nan", "inf", "", "3", "2.5"]),
)


@FUZZ
@given(
    name=st.one_of(st.sampled_from(builtin_names()), st.text(max_size=8)),
    params=st.lists(spec_params, max_size=5),
)
def test_kernel_specs_give_a_finite_kernel_or_a_kernel_error(name: str, params: list) -> None:
    spec = ":".join([name, *params])
    assume("/" not in spec and "\x00" not in spec and not Path(spec).exists())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            kernel = load_kernel(spec, kernel_dirs=["/nonexistent"])
        except KernelError as exc:
            assert "\n" not in str(exc)
        else:
            assert np.isfinite(kernel.weights).all()
            assert max(kernel.shape[-2:]) <= 4097
    parse_kernel_spec(spec)  # never raises


@FUZZ
@given(spec=st.one_of(st.text(max_size=20), yaml_values))
def test_parse_activation(spec: object) -> None:
    try:
        name, slope = parse_activation(spec)  # type: ignore[arg-type]
    except ParameterError:
        return
    assert name in ("none", "relu", "leaky-relu", "sigmoid", "tanh", "abs")
    assert np.isfinite(slope)


@FUZZ
@given(
    text=st.one_of(st.none(), st.text(max_size=30), st.text("0123456789.,-e+naif ", max_size=20))
)
def test_parse_bias(text: str | None) -> None:
    try:
        bias = parse_bias(text)
    except ParameterError:
        return
    values = bias if isinstance(bias, tuple) else (bias,)
    assert bias is None or all(np.isfinite(v) for v in values)


# --------------------------------------------------------------------------- conv2d / pool2d

small_ints = st.one_of(
    st.integers(min_value=-2, max_value=6), st.integers(min_value=-(2**70), max_value=2**70)
)
arg_values = st.one_of(
    small_ints,
    st.tuples(small_ints, small_ints),
    st.tuples(small_ints, small_ints, small_ints, small_ints),
    st.sampled_from(["same", "valid", "full", "SAME", "1,2", "x", "", "-1", "2,2,2"]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    st.lists(st.integers(-2, 4), max_size=5),
)
arrays = st.one_of(
    st.builds(
        lambda shape, seed: np.random.default_rng(seed).random(shape).astype(np.float32),
        st.lists(st.integers(0, 5), min_size=1, max_size=4).map(tuple),
        st.integers(0, 9),
    ),
    st.sampled_from([np.zeros((3, 4), dtype=object), np.array(["a"]), np.zeros((2, 2), bool)]),
)
kernels = st.one_of(
    arrays,
    st.sampled_from(["sobel", "box:3", None, 3, [[1, 2]], [[1, 2], [3]], np.full((2, 2), np.nan)]),
)
#: What the library may raise for a bad argument (ValueError subclasses all).
ALLOWED = (ConvcliError, ValueError)


@FUZZ
@given(
    x=arrays,
    kernel=kernels,
    stride=arg_values,
    padding=arg_values,
    dilation=arg_values,
    groups=st.one_of(small_ints, st.floats(), st.none()),
    pad_mode=st.sampled_from(["reflect", "zeros", "constant", "circular", "mirror", "", None]),
    pad_value=st.one_of(st.floats(allow_nan=True), st.text(max_size=2)),
    bias=st.one_of(st.none(), st.floats(allow_nan=True), st.lists(st.floats(), max_size=4)),
    activation=st.one_of(st.none(), st.sampled_from(["relu", "leaky-relu:x", "swish", "abs"])),
    method=st.sampled_from(["auto", "direct", "fft", "gemm", "opencv", "nope"]),
)
def test_conv2d_argument_validation(
    x, kernel, stride, padding, dilation, groups, pad_mode, pad_value, bias, activation, method
) -> None:  # noqa: ANN001
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN in, NaN out is allowed
        try:
            out = conv2d(
                x, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
                pad_mode=pad_mode, pad_value=pad_value, bias=bias, activation=activation,
                method=method,
            )  # fmt: skip
        except ALLOWED as exc:
            assert "\n" not in str(exc).strip(), str(exc)
            return
        except MemoryError:
            return  # a huge but legal output: the runner reports "out of memory"
    assert isinstance(out, np.ndarray) and out.dtype.kind == "f"


@FUZZ
@given(
    x=arrays,
    op=st.sampled_from(["max", "avg", "min", "global-max", "global-avg", "sum", "", None]),
    size=arg_values,
    stride=arg_values,
    padding=arg_values,
    ceil_mode=st.booleans(),
    count_include_pad=st.booleans(),
)
def test_pool2d_argument_validation(x, op, size, stride, padding, ceil_mode, count_include_pad):  # noqa: ANN001, ANN201
    try:
        out = pool2d(
            x, op, size=size, stride=stride, padding=padding, ceil_mode=ceil_mode,
            count_include_pad=count_include_pad,
        )  # fmt: skip
    except ALLOWED as exc:
        assert "\n" not in str(exc).strip(), str(exc)
        return
    except MemoryError:
        return
    assert isinstance(out, np.ndarray)


@pytest.mark.parametrize(
    "value", [2**31, 10**20, (1, 2**40), "99999999999999999999", np.uint64(2**63)]
)
def test_huge_whole_numbers_are_refused_at_the_edge(value: object) -> None:
    with pytest.raises(ParameterError, match="at most"):
        as_pair(value, "stride")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="at most"):
        parse_padding(value)  # type: ignore[arg-type]
