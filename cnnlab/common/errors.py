"""One exception type for every user error; the CLI prints it as one line and exits 2."""


class CnnlabError(Exception):
    """A user-facing error: the message says what is wrong, where, and how to fix it.

    Raised for bad specs, impossible shapes, missing data, bad config keys. The CLI prints
    ``cnnlab: error: <message>`` on one line (no traceback) and exits with status 2.
    """


class CnnlabWarning(UserWarning):
    """Input that works but may not mean what was meant (``conv5x5``: five 5x5 filters); the
    CLI prints it as one line, ``cnnlab: warning: <message>``, and goes on."""


class SpecError(CnnlabError):
    """A spec string/file could not be parsed; ``column`` points at the offending token."""

    def __init__(self, message: str, column: int | None = None, token: str | None = None):
        where = ""
        if column is not None:
            where = f" at column {column}"
            if token:
                shown = token if len(token) <= 40 else token[:37] + "..."
                where += f" ('{shown}')"
        super().__init__(f"spec{where}: {message}")
        self.column = column
        self.token = token


class ShapeError(CnnlabError):
    """A layer cannot be applied to its input (kernel larger than input, channel mismatch...)."""

    def __init__(self, layer: str, message: str):
        super().__init__(f"layer {layer}: {message}")
        self.layer = layer
