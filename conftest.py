"""Root conftest: its presence puts this folder first on sys.path (pytest's default
import mode), so the tests and the doctests (``--doctest-modules convcli``) import
the package from this source tree even when it was installed non-editable."""
