"""The command-line boundary shared by the entry points (training, prediction, plots).

User mistakes raise `errors.UserError` anywhere below; here, and only here, one becomes a line
``error: ...`` on stderr and exit code 2. Programming errors still raise with a traceback.
"""

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from errors import UserError

USER_ERROR_EXIT = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises `UserError` (one line, no usage dump) instead of exiting."""

    def error(self, message: str):
        raise UserError(f"{message} (see --help)")


def run(main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None) -> int:
    """``main(argv)`` (default: the process's arguments) → its exit code; a `UserError` prints
    one line and gives `USER_ERROR_EXIT`."""
    try:
        return main(list(sys.argv[1:] if argv is None else argv)) or 0
    except UserError as error:
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank finds it: rank 0 says it
            print(f"error: {one_line(str(error))}", file=sys.stderr)
        return USER_ERROR_EXIT


def one_line(text: str) -> str:
    """``text`` with every unprintable character (newlines, line and record separators, other
    controls: e.g. from a config key or a file name quoted in a message) written as its escape,
    so that the message stays one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
