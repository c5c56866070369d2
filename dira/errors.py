"""Errors that mean "the input is wrong", reported to the user as one line naming the file and the problem."""


class InputError(ValueError):
    """A file or value given to a command is missing, malformed or inconsistent."""
