"""The one error type for a user's mistake in `seg-kd`.

Domain code raises `SegKdError` (or a subclass) when the input is at fault: a missing or
unreadable file, a wrong option, an output that cannot be written. The CLI prints its message
as one line, `seg-kd <command>: error: <message>`, and exits 2. Anything else is a bug and
keeps its traceback.
"""


class SegKdError(Exception):
    """A user's mistake: the message names the file or option at fault and what to do."""
