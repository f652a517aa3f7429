"""``python -m convcli``."""

from convcli.cli import script

if __name__ == "__main__":
    script()
