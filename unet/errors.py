"""The package's own exception type for bad input.

Library modules raise :class:`InputError` for what the user gave them (a missing or corrupt
file, a wrong shape or dtype, a bad value); the command line turns it into one line on
stderr. Any other exception is a bug and keeps its traceback. It subclasses ValueError, so
callers that catch ValueError keep working.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: a file, array, value or configuration that is not what was expected."""
