"""The house: no module imports another that imports it back (the layer contract in
pyproject.toml, checked by ``lint-imports``, keeps the layers one-directional)."""

from __future__ import annotations

import grimp


def test_no_import_cycles_between_modules() -> None:
    graph = grimp.build_graph("convcli", exclude_type_checking_imports=True)
    cycles = sorted(
        (a, b)
        for a in graph.modules
        for b in graph.find_modules_directly_imported_by(a)
        if a < b and graph.chain_exists(importer=b, imported=a)
    )
    assert cycles == [], cycles
