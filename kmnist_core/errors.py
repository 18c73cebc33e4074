"""The errors a user can cause or meet, under one base the CLI turns into one line.

``KmnistError`` is what every front end (CLI, app, notebook) catches to show a message
instead of a traceback; anything else is a bug and keeps its traceback."""


class KmnistError(Exception):
    """A problem the message explains, with what to do about it."""


class StoreError(KmnistError, RuntimeError):
    """The store cannot do what was asked; the message says why and what to do."""


class RunNotFoundError(StoreError):
    pass
