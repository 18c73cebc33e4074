"""The one base class of the errors a user can cause and fix: bad settings, missing or
damaged data, a run that does not exist, a file in the way. The CLI turns a ``KmnistError``
into one line on stderr and a non-zero exit code; anything else is a bug and keeps its
traceback. Each subclass keeps the built-in base callers already catch (``ValueError``...)."""


class KmnistError(Exception):
    """Something the user can fix, said in one line that names what and how."""
