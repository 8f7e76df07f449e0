"""The project's own error types.

Every failure that a user can cause (bad files, bad requests, bad configs) raises a subclass of
:class:`GraphdelError` with a message that names the offending row, id or key, so that the command line
can print it without a traceback and tests can assert on it.
"""

from __future__ import annotations


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
            where.append(f"id {item_id!r}")
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
