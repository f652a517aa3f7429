"""``--executor dask``: the same batch on a dask.distributed cluster (a LocalCluster here)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convcli.cli import app
from convcli.errors import ParameterError

pytest.importorskip("distributed")

pytestmark = [pytest.mark.dask]

runner = CliRunner()


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:  # fmt: skip
        yield cluster.scheduler_address


def _inputs(root: Path) -> Path:
    src = root / "in"
    rng = np.random.default_rng(0)
    for rel in ("a.png", "b.png", "sub/c.png", "sub/d.jpg"):
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(path)
    (src / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    return src


def _records(path: Path) -> list[dict]:
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    for r in recs:
        r.pop("seconds")
    return recs


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_dask_batch_matches_local_run(
    scheduler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths: workers get absolute ones, the manifest not
    _inputs(tmp_path)
    common = ["convolve", "in", "-r", "-k", "sobel", "--pool", "max"]
    local = runner.invoke(app, [*common, "-o", "local", "--manifest", "local.jsonl", "-j", "1"])
    assert local.exit_code == 1
    res = runner.invoke(
        app,
        [*common, "-o", "out", "--manifest", "dask.jsonl", "--executor", "dask",
         "--scheduler", scheduler],
    )  # fmt: skip
    assert res.exit_code == 1, res.output
    assert "in/sub/broken.png" in res.stderr
    assert "batch summary" in res.stdout

    dask_files = _files(tmp_path / "out")
    assert sorted(dask_files) == [
        "a.sobel-maxpool.sobel-x.png", "a.sobel-maxpool.sobel-y.png",
        "b.sobel-maxpool.sobel-x.png", "b.sobel-maxpool.sobel-y.png",
        "sub/c.sobel-maxpool.sobel-x.png", "sub/c.sobel-maxpool.sobel-y.png",
        "sub/d.sobel-maxpool.sobel-x.png", "sub/d.sobel-maxpool.sobel-y.png",
    ]  # fmt: skip
    assert dask_files == _files(tmp_path / "local")

    recs = _records(tmp_path / "dask.jsonl")
    by_input = {r["input"]: r for r in recs}
    assert list(by_input) == ["in/a.png", "in/b.png", "in/sub/broken.png", "in/sub/c.png",
                              "in/sub/d.jpg"]  # fmt: skip
    broken = by_input["in/sub/broken.png"]
    assert broken["status"] == "failed" and broken["error"].startswith("in/sub/broken.png")
    assert by_input["in/sub/c.png"]["outputs"] == [
        "out/sub/c.sobel-maxpool.sobel-x.png",
        "out/sub/c.sobel-maxpool.sobel-y.png",
    ]
    local_recs = _records(tmp_path / "local.jsonl")
    for r in local_recs:
        r["outputs"] = [p.replace("local/", "out/", 1) for p in r["outputs"]]
    assert recs == local_recs

    again = runner.invoke(
        app,
        [*common, "-o", "out", "--manifest", "again.jsonl", "--skip-existing", "-q",
         "--executor", "dask", "--scheduler", scheduler],
    )  # fmt: skip
    assert again.exit_code == 1
    statuses = {r["input"]: r["status"] for r in _records(tmp_path / "again.jsonl")}
    assert statuses.pop("in/sub/broken.png") == "failed"
    assert set(statuses.values()) == {"skipped"}


def test_dask_needs_a_scheduler(tmp_path: Path) -> None:
    src = _inputs(tmp_path)
    res = runner.invoke(app, ["convolve", str(src), "-k", "box", "--executor", "dask"])
    assert isinstance(res.exception, ParameterError)
    assert "--scheduler" in str(res.exception)
    res = runner.invoke(
        app, ["convolve", str(src), "-k", "box", "--executor", "dask", "--scheduler", "a:::"]
    )
    assert isinstance(res.exception, ParameterError)


def test_unreachable_scheduler_is_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import convcli.run.cluster

    monkeypatch.setattr(convcli.run.cluster, "DASK_CONNECT_TIMEOUT", 1)
    src = _inputs(tmp_path)
    res = runner.invoke(
        app,
        ["convolve", str(src), "-k", "box", "-o", str(tmp_path / "out"), "--executor", "dask",
         "--scheduler", "tcp://127.0.0.1:9"],
    )  # fmt: skip
    assert isinstance(res.exception, ParameterError)
    assert "cannot reach the Dask scheduler" in str(res.exception)
    assert not (tmp_path / "out").exists()
