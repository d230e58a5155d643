"""The project's exceptions.

    RunbookError            base: ``str(e)`` is one line a user can act on
     +-- InputError         bad input (name, type, address, file): exit code 3, no traceback

Errors of foreign libraries (dnspython, icmplib, sockets) never cross a check's boundary: each check
turns them into findings, keeping the original as evidence.
"""


class RunbookError(Exception):
    """Base of every error this project raises on purpose."""


class InputError(RunbookError):
    """Something the user gave us (argument, option, file) is unusable."""
