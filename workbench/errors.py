"""One error type for bad input: the CLI prints its message on one line and exits 2."""


class WorkbenchError(ValueError):
    """Bad input from the user; the message says what to do."""
