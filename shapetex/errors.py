"""The error the `shapetex` command reports in one line: `UserError`.

A UserError is a failure that is the input's, the settings' or the machine's fault, not shapetex's: a missing
folder, an image that does not decode, a setting of the wrong type or range, a flag that does not apply, a
damaged checkpoint, a download whose hash does not match. Its message says what was wrong and what to do, and
the command line prints it as one line (`shapetex CMD: error: MESSAGE`, exit status 2); `--debug` shows the
traceback. Anything else that escapes a command (a plain ValueError, TypeError, a RuntimeError from inside
torch) is taken for a bug and keeps its traceback (exit status 1).

The kinds in use (each also a ValueError, so code that catches ValueError keeps working):
- `shapetex.config.ConfigError`: a setting or a command-line flag with a value that cannot be used;
- `shapetex.data.images.DataError`: input data or files (images, folders, checkpoints, run folders, downloads).
Raise UserError itself for the rest. A check that guards shapetex's own invariants (a caller inside shapetex
passing the wrong thing) stays a plain ValueError: reaching it is a bug.

This module imports nothing from shapetex, so that any module may import it.
"""

from __future__ import annotations


class UserError(Exception):
    """A failure that is the input's, the settings' or the machine's fault, with a message that says what to do;
    the command line prints it in one line (no traceback unless --debug)."""
