"""The project's own error types.

Every failure that a user can cause (bad files, bad requests, bad configs) raises a subclass of
:class:`GraphdelError` with a message that names the offending row, id or key, so that the command line
can print it without a traceback and tests can assert on it.
"""

from __future__ import annotations

import reprlib
import warnings

#: Echoed user content (an id, a SMILES, a JSON value) is cut to this many characters in a message, so
#: that a runaway field (a 10 MB id, a 100,000-deep JSON array) still gives a one-line error.
MAX_ECHO_CHARS = 300


class GraphdelError(Exception):
    """Base class of every error graphdel raises on purpose."""


class InvalidInputError(GraphdelError, ValueError):
    """A data file or record cannot be read: wrong columns, unparsable SMILES, bad encoding..."""


class InvalidMoleculeError(InvalidInputError):
    """A SMILES string that RDKit cannot parse, or that has no heavy atom.

    Attributes:
        row: 1-based row number in the source (or ``None`` when not known).
        item_id: the molecule or pair id of that row (or ``None``).
        smiles: the offending SMILES string.
    """

    def __init__(self, message: str, *, row: int | None = None, item_id: str | None = None,
                 smiles: str | None = None) -> None:
        where = []
        if row is not None:
            where.append(f"row {row}")
        if item_id is not None:
            where.append(f"id {shorten(item_id)}")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)
        self.row, self.item_id, self.smiles = row, item_id, smiles


class RequestError(GraphdelError, ValueError):
    """A deletion request that cannot be honoured (unknown ids, ids outside training, empty...)."""


class ConfigError(GraphdelError, ValueError):
    """An unknown configuration key or a value of the wrong type."""


class RunError(GraphdelError):
    """A run folder that is missing, unfinished, or does not match the data it is used with."""


class UnlearningNoOpError(GraphdelError):
    """An unlearning run changed nothing (same weights, nothing removed from the model's structure): there
    is no deletion to certify."""


class TrainingDivergedError(GraphdelError):
    """The loss became NaN or infinite; nothing is written as finished."""


class IntegrityError(RunError):
    """A run's weights or ``config.json`` differ from the hashes recorded when the run was written
    (``integrity.json`` of a trained run, ``certificate.json`` of an unlearned one)."""


class GraphdelWarning(UserWarning):
    """Something the user should know about their data that is not an error (a tiny test split, stripped
    salts, duplicated pairs). Printed as one line, ``graphdel: warning: ...``, without a source location."""


def warn(message: str) -> None:
    """Issue ``message`` as a :class:`GraphdelWarning` (one line on stderr; filterable with :mod:`warnings`).

    Python shows a given message once per process (the default filter), so a corpus loaded twice by one
    command is reported once.
    """
    warnings.warn(message, GraphdelWarning, stacklevel=2)


def shorten(value: object, limit: int = MAX_ECHO_CHARS) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters with the full length said.

    A string is cut before ``repr`` (a megabyte id is never copied whole), and a container is shown to a
    bounded depth and length (``repr`` of a 100,000-deep list would raise ``RecursionError``).
    """
    if isinstance(value, str):
        text = repr(value[:limit + 1])
        size = len(value)
    else:
        short = reprlib.Repr()
        short.maxlevel, short.maxlist, short.maxtuple, short.maxdict = 3, 10, 10, 10
        short.maxstring = short.maxother = limit
        text = short.repr(value)
        size = None
    if len(text) <= limit:
        return text
    return text[:limit] + (f"... ({size} characters)" if size is not None else "...")


_format_other_warnings = warnings.formatwarning


def _format_warning(message, category, filename, lineno, line=None) -> str:
    # A GraphdelWarning is addressed to the user: one line, no source path or code line. Every other
    # warning keeps Python's format (or whichever formatter was installed before this module).
    if isinstance(category, type) and issubclass(category, GraphdelWarning):
        return f"graphdel: warning: {message}\n"
    return _format_other_warnings(message, category, filename, lineno, line)


warnings.formatwarning = _format_warning
