"""One exception hierarchy. Each error carries the sentence a user reads and the CLI exit code.

Exit codes: 0 success; 1 problems found (validate) or an invalid card; 2 usage or I/O error;
3 unknown or ambiguous name; 4 integrity (sha256 mismatch, tampered card); 5 transfer;
6 offline and not cached; 7 model building or weight loading.

Each error also subclasses the builtin exception a Python caller would catch for it (as huggingface_hub's
errors do): UsageError and CardError are ValueErrors, MissingFileError (a card file that is not there) a
FileNotFoundError, NotFoundError a LookupError, IntegrityError a ValueError, LoadError a RuntimeError.
TransferError and OfflineError are not ConnectionErrors: those are OSErrors, and the transfer engine treats
an OSError as a failed disk write, so the two must stay apart. All are importable from `registry` itself.
"""

from __future__ import annotations

from .text import mask_passwords


class RegistryError(Exception):
    """Base class: `str(err)` is the whole user-facing message."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(mask_passwords(message))
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, text: str) -> None:  # a password in a URL (user:pass@host) never reaches a message
        self._message = mask_passwords(text)

    def __str__(self) -> str:
        return self.message


class UsageError(RegistryError, ValueError):
    """Bad arguments, bad names, unreadable files."""

    exit_code = 2


class MissingFileError(UsageError, FileNotFoundError):
    """A file the user named does not exist (a card file, a file to hash)."""


class CardError(RegistryError, ValueError):
    """A card that cannot be used: unparseable or failing the schema."""

    exit_code = 1


class NotFoundError(RegistryError, LookupError):
    """Unknown model name (with suggestions) or an ambiguous short name (with candidates)."""

    exit_code = 3


class IntegrityError(RegistryError, ValueError):
    """Bytes whose sha256 differs from the one promised (asset, card or index)."""

    exit_code = 4


class TransferError(RegistryError):
    """Network or server failure that retries did not overcome."""

    exit_code = 5


class OfflineError(RegistryError):
    """Offline mode and the thing asked for is not in the cache."""

    exit_code = 6


class LoadError(RegistryError, RuntimeError):
    """No builder for a card, or weights that do not fit the network."""

    exit_code = 7


class RegistryWarning(UserWarning):
    """Base class of the warnings the library emits (the CLI prints them as `registry: warning: ...`)."""


class CardWarning(RegistryWarning):
    """A card defect that does not block use (cosmetic for consumers; `registry validate` reports it)."""


class PrefixWarning(RegistryWarning):
    """An asset verified against a sha256 prefix: it guards against corruption, not against a hostile server."""
