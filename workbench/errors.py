"""One error type for bad input: the CLI prints its message on one line and exits 2. And one kind of
Ctrl-C, pressed before any work began (while the input was read), so nothing ran and nothing was saved."""


class WorkbenchError(ValueError):
    """Bad input from the user; the message says what to do."""


class InterruptedBeforeWork(KeyboardInterrupt):
    """Ctrl-C before any work began; the message says during what (``while reading data.jsonl``)."""
