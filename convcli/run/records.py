"""What a run records, as plain data: the JSON report of one input, the manifest, the counts.

``--json`` prints :func:`result_json`; the manifest holds one
:meth:`~convcli.run.jobs.Outcome.manifest_line` per input. The Rich report in
:mod:`convcli.cli.report` shows the same content as tables.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convcli.errors import OutputError
from convcli.safety import printable

if TYPE_CHECKING:
    from convcli.imageio import MapImage, WriteResult
    from convcli.pipeline import Pipeline, Result, StageRecord


@dataclass
class Outcome:
    """What happened to one input. Small and picklable (no arrays unless ``keep_result``)."""

    input: str
    status: str  # done | skipped | failed | planned
    outputs: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    report: dict[str, Any] | None = None  # report.result_json(...)
    result: Result | None = None
    write: Any = None
    exception: BaseException | None = None  # the error itself, with ``keep_result`` (--traceback)

    def manifest_line(self, parameters: dict[str, Any]) -> dict[str, Any]:
        rep = self.report or {}
        return {
            "input": self.input,
            "status": self.status,
            "outputs": self.outputs,
            "parameters": parameters,
            "in_shape": rep.get("in_shape"),
            "out_shape": rep.get("out_shape"),
            "stages": [
                {"name": s["name"], "in_shape": s["in_shape"], "out_shape": s["out_shape"]}
                for s in rep.get("stages", [])
            ],
            "maps": rep.get("maps", []),
            "error": self.error,
            "seconds": round(self.seconds, 4),
        }


def warnings_of(result: Result, write: WriteResult | None = None) -> list[str]:
    """Every warning the report shows: unused rows/columns, blank maps, heavy clipping, few
    grey levels (:func:`convcli.imageio.tone.tone_warnings`), options that did not apply, notes."""
    out = [f"stage {r.index} ({r.name}): {w}" for r in result.records for w in r.geometry.warnings]
    if result.maps is not None:
        from convcli.imageio.tone import tone_warnings

        mappings = list(getattr(write, "mappings", None) or [])
        files = [p.name for p in (write.planned if write is not None else [])][: len(mappings)]
        out.extend(
            tone_warnings(
                [(lo, hi) for lo, hi, _ in result.map_stats()], mappings,
                labels=map_names(result), files=files,
                stage_options=[r.options for r in result.records if r.kind == "conv"],
            )
        )  # fmt: skip
    out.extend(getattr(write, "notes", None) or [])
    out.extend(result.notes)
    return out


def mapping_text(m: MapImage, n_files: int = 1, fmt: str = "png") -> str:
    """How the pictures were made, in words: which value became black, which white.

    >>> from convcli.imageio import MapImage
    >>> mapping_text(MapImage("offset", 0.0, -2.0, 2.0, "offset"), 2)
    'png mapping: offset: 0 = mid-grey, ±2 = black/white (one mapping for all files)'
    """
    return f"{fmt} mapping: {m.text()}" + (" (one mapping for all files)" if n_files > 1 else "")


def map_names(result: Result) -> list[str]:
    """A readable name per output map: ``R``, ``sobel-x:G``, ``3`` ..."""
    n = result.out_shape[0]
    ch = result.channels
    if result.layout.kind == "image" and len(ch) == n:
        return list(ch)
    if result.layout.kind == "bank" and ch:
        return [f"{lab}:{c}" for lab in result.labels for c in ch][:n] or [str(i) for i in range(n)]
    if len(result.labels) == n:
        return list(result.labels)
    return [str(i) for i in range(n)]


def record_json(r: StageRecord) -> dict[str, Any]:
    g = r.geometry
    return {
        "index": r.index,
        "kind": r.kind,
        "name": r.name,
        "description": r.description,
        "in_shape": list(g.in_shape),
        "out_shape": list(g.out_shape),
        "kernel": list(g.kernel_hw),
        "stride": list(g.stride),
        "dilation": list(g.dilation),
        "padding": dict(zip(("top", "bottom", "left", "right"), g.padding, strict=True)),
        "formula": {"H": g.formulas[0].text(), "W": g.formulas[1].text()},
        "params": g.params,
        "macs": g.macs,
        "receptive_field": list(g.receptive_field),
        "effective_stride": list(g.jump),
        "options": {k: _jsonable(v) for k, v in r.options.items()},
        "warnings": list(g.warnings),
        "seconds": round(r.seconds, 6),
    }


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def result_json(result: Result, write: WriteResult | None = None, *, dry_run: bool = False) -> dict:
    """The report as plain data (what ``--json`` prints)."""
    data: dict[str, Any] = {
        "input": result.input,
        "in_shape": list(result.in_shape),
        "channels": result.channels,
        "out_shape": list(result.out_shape),
        "stages": [record_json(r) for r in result.records],
        "total_params": sum(r.geometry.params for r in result.records),
        "total_macs": sum(r.geometry.macs for r in result.records),
        "warnings": warnings_of(result, write),
    }
    if result.maps is not None or result.stats is not None:
        data["maps"] = [
            {"name": n, "min": lo, "max": hi, "mean": mean}
            for n, (lo, hi, mean) in zip(map_names(result), result.map_stats(), strict=True)
        ]
    if write is not None:
        data["outputs"] = [str(p) for p in (write.planned if dry_run else write.paths)]
        if write.mapping is not None:
            data["mapping"] = _mapping_json(write.mapping)
            data["mappings"] = [
                {"file": str(p), **_mapping_json(m)}
                for p, m in zip(write.planned, write.mappings, strict=False)
            ]
    data["dry_run"] = dry_run
    return data


def _mapping_json(m: MapImage) -> dict[str, Any]:
    data: dict[str, Any] = {
        "range": m.kind, "requested": m.requested, "lo": m.lo, "hi": m.hi,
        "clipped_fraction": m.clipped_fraction, "levels": m.levels, "text": m.text(),
    }  # fmt: skip
    if m.threshold is not None:
        data["threshold"] = m.threshold
        data["white_fraction"] = m.above_fraction
    if m.cmap:
        data["cmap"] = m.cmap
    return data


def summary_counts(outcomes: list[Outcome]) -> dict[str, Any]:
    counts = {
        s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed", "planned")
    }
    return {**counts, "inputs": len(outcomes)}


def merge_records(new: list[dict[str, Any]], old: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This run's manifest records, where an input skipped now keeps its earlier ``done`` record.

    >>> old = [{"input": "a.png", "status": "done", "outputs": ["o/a.k.png"], "maps": [1]}]
    >>> new = [{"input": "a.png", "status": "skipped", "outputs": ["o/a.k.png"], "maps": []},
    ...        {"input": "b.png", "status": "done", "outputs": ["o/b.k.png"], "maps": [2]}]
    >>> [(r["input"], r["status"], r["maps"]) for r in merge_records(new, old)]
    [('a.png', 'done', [1]), ('b.png', 'done', [2])]
    """
    earlier = {r["input"]: r for r in old if r.get("status") == "done"}
    merged = []
    for rec in new:
        before = earlier.get(rec["input"])
        if rec["status"] == "skipped" and before is not None:
            if before.get("outputs") == rec["outputs"]:
                rec = before
        merged.append(rec)
    return merged


def write_manifest(
    path: Path,
    outcomes: list[Outcome],
    pipeline: Pipeline,
    *,
    replace: bool = False,
    earlier: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> None:
    """JSON Lines, one record per input, written atomically, with the outputs' file mode.

    Without ``replace`` the name is claimed only if no file has it (see
    :func:`convcli.imageio.atomic.claim`). Records of ``earlier`` (the
    manifest being resumed) are kept for inputs this run skipped.
    """
    from convcli.imageio.atomic import claim, temp_name
    from convcli.imageio.write import NEW_FILE_MODE

    params = pipeline_parameters(pipeline)
    records = [o.manifest_line(params) for o in outcomes]
    if earlier:
        records = merge_records(records, list(earlier))
    text = "".join(json.dumps(r) + "\n" for r in records)
    path = Path(path)
    shown = printable(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_name(path.parent)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)
    except OSError as exc:
        raise OutputError(f"{shown}: cannot write the manifest ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, NEW_FILE_MODE)
        claim(tmp, path, replace=replace)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, FileExistsError):
            raise OutputError(f"{shown}: cannot write the manifest (another process made"
                              " it meanwhile)") from exc  # fmt: skip
        if isinstance(exc, OSError):
            why = exc.strerror or exc
            raise OutputError(f"{shown}: cannot write the manifest ({why})") from exc
        raise


def pipeline_parameters(pipeline: Pipeline) -> dict[str, Any]:
    """The run's parameters as plain data (npz files and the manifest keep them)."""
    stages = []
    for s in pipeline.stages:
        opts = {k: _plain(v) for k, v in s.options().items()}
        if s.kind == "conv":
            k = s.kernel  # type: ignore[union-attr]
            stages.append({"conv": {"kernel": k.name, "shape": list(k.weights.shape), **opts}})
        elif s.kind == "combine":
            stages.append({"combine": opts})
        else:
            stages.append({"pool": {"op": s.op, **opts}})  # type: ignore[union-attr]
    return {
        "name": pipeline.name,
        "gray": pipeline.gray,
        "alpha": pipeline.alpha,
        "dtype": pipeline.dtype,
        **({"normalize": _plain(pipeline.normalize)} if pipeline.normalize else {}),
        "stages": stages,
    }


def _plain(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    if hasattr(v, "tolist"):
        return v.tolist()
    return v
