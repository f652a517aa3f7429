"""One large image split into tile tasks over a real Dask LocalCluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from convcli.cli import app
from convcli.imageio import load_image
from convcli.imageio.png import encode_png

pytest.importorskip("distributed")

pytestmark = [pytest.mark.dask]

runner = CliRunner()


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
        dashboard_address=":0",  # any free port: None means 8787, which another run may hold
    ) as c:  # fmt: skip
        yield c


def _worker_runs(address: str) -> dict[str, list[str]]:
    from distributed import Client

    def tokens() -> list[str]:
        from convcli.run import tiles as runner_tiles

        return sorted(runner_tiles._WORKER)

    with Client(address, set_as_default=False) as client:
        return client.run(tokens)  # type: ignore[no-any-return]


@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_one_image_as_tile_tasks_equals_the_local_run(
    cluster: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative input: workers are given its absolute path
    px = np.random.default_rng(5).integers(0, 256, (3, 230, 190), dtype=np.uint8)
    Path("in.png").write_bytes(encode_png(px))
    address = cluster.scheduler_address  # type: ignore[attr-defined]
    common = ["convolve", "in.png", "-k", "sobel", "--pad-mode", "circular", "--pool", "max",
              "--tile", "37", "--format", fmt, "--json"]  # fmt: skip
    local = runner.invoke(app, [*common, "-o", "local"])
    assert local.exit_code == 0, local.output
    res = runner.invoke(app, [*common, "-o", "dask", "--executor", "dask", "--scheduler", address])
    assert res.exit_code == 0, res.output
    assert '"tiles"' in res.stdout and '"outputs"' in res.stdout
    names = sorted(p.name for p in Path("dask").iterdir())
    assert names == sorted(p.name for p in Path("local").iterdir())
    assert len(names) == 2
    for name in names:
        a, b = load_image(Path("dask") / name).array, load_image(Path("local") / name).array
        np.testing.assert_array_equal(a, b)
    runs = _worker_runs(address)
    assert len(runs) == 2 and all(runs.values())  # both workers computed tiles
