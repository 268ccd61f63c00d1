"""The one exception family the faces catch and print as a single line.

Every error a user can cause (a bad preset, a missing column, no tokenizer file) is raised as a
subclass of `FwtuiError` whose message says what was wrong, with the value, and what to do instead.
The CLI prints it without a traceback (unless --debug); the app shows it in an error panel.
"""


class FwtuiError(Exception):
    """A user-facing error: `str(err)` is one line naming the problem and the fix."""


class ConfigError(FwtuiError, ValueError):
    """A preset, config file or override is invalid."""


class TokenizerError(FwtuiError):
    """The GPT-2 tokenizer ranks could not be loaded."""


class DataError(FwtuiError):
    """An input file or prepared dataset is missing, unreadable or malformed."""


class CheckpointError(FwtuiError):
    """A checkpoint is missing, incomplete, unsafe or does not match the run."""
