"""The one base class of the errors a user can cause and fix: bad settings, missing or
damaged data, a run that does not exist, a file in the way, a store that cannot be used.
Every front end (CLI, app, notebook) turns a ``KmnistError`` into one line; anything else
is a bug and keeps its traceback. Each subclass keeps the built-in base callers already
catch (``ValueError``, ``RuntimeError``...)."""


def one_line(error: Exception) -> str:
    """How a front end says ``error``: its first line, or its type when it has no text."""
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__


class KmnistError(Exception):
    """Something the user can fix, said in one line that names what and how."""


class StoreError(KmnistError, RuntimeError):
    """The store cannot do what was asked; the message says why and what to do."""


class RunNotFoundError(StoreError):
    pass
