"""How a stack of output maps is grouped into pictures: one image, a bank's members, or maps.

- ``image``: the maps are the channels of one picture (a blur of an RGB photo).
- ``bank`` of ``members`` kernels: the maps are member-major, ``C`` channels each
  (a Sobel pair on RGB is 2 pictures of 3 channels).
- ``maps``: one grey picture per map (a 4-D layer's outputs).

>>> Layout.bank(2).pictures(6), str(Layout.bank(2)), Layout.parse("maps").pictures(5)
(2, 'bank:2', 5)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from convcli.errors import ParameterError

LayoutKind = Literal["image", "bank", "maps"]


@dataclass(frozen=True)
class Layout:
    kind: LayoutKind = "image"
    members: int = 1  # kernels of a bank (1 otherwise)

    @classmethod
    def image(cls) -> Layout:
        return cls("image")

    @classmethod
    def bank(cls, members: int) -> Layout:
        if members < 1:
            raise ParameterError(f"a bank needs at least one kernel, got {members}")
        return cls("bank", members)

    @classmethod
    def maps(cls) -> Layout:
        return cls("maps")

    @classmethod
    def parse(cls, value: Layout | str) -> Layout:
        """A :class:`Layout`, or its text: ``image``, ``bank:N`` or ``maps``."""
        if isinstance(value, Layout):
            return value
        text = str(value).strip().lower()
        if text in ("image", "maps"):
            return cls(text)  # type: ignore[arg-type]
        if text.startswith("bank:"):
            try:
                return cls.bank(int(text[5:]))
            except ValueError:
                pass
        raise ParameterError(f"unknown layout {value!r} (use image, bank:N or maps)")

    def pictures(self, n_maps: int) -> int:
        """How many pictures ``n_maps`` maps make; a bank must split them evenly."""
        if self.kind == "image":
            return 1
        if self.kind == "maps":
            return n_maps
        if n_maps % self.members:
            raise ParameterError(
                f"layout {self}: {n_maps} maps do not split into {self.members} kernels of"
                " equal size"
            )
        return self.members

    def __str__(self) -> str:
        return f"bank:{self.members}" if self.kind == "bank" else self.kind
