"""The command line: click commands, option parsing, Rich reports, exit codes."""

from convcli.cli.app import app, main, script

__all__ = ["app", "main", "script"]
