"""The one exception type for user mistakes.

Anything a user can get wrong (config, data, expression, command-line arguments, run folder)
raises `UserError` with a one-line message saying what is wrong and where. The command-line
entry points catch it once, print the line, and exit non-zero; programming errors still raise.
"""


class UserError(Exception):
    """A mistake in user input; its message is one line, shown to the user as is."""


class ConfigError(UserError):
    """A bad configuration key or value."""


class DataError(UserError):
    """A bad data file, expression or data set."""


class WriteError(UserError):
    """A file that could not be written (disk full, folder not writable): files written before
    stay whole (fileio.py writes atomically)."""
