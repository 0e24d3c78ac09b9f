"""Domain errors and the exit codes they map to at the CLI boundary.

Library code raises these; only `reasoncli.cli` turns them into one `Error: ...` line and an
exit status, so the library stays usable from Python without `sys.exit` surprises.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    MODEL = 3
    INPUT = 4
    RESOURCES = 5
    UNREACHABLE = 6
    AUTH = 7
    PROTOCOL = 8
    ADDRESS = 9
    # 10 is `reason tune`'s NO_POLICY (cli/tune.py)
    BRANCHES_FAILED = 11
    INTERRUPTED = 130


class ReasonError(Exception):
    """Base class: a message fit to show a user on one line."""

    exit_code: ExitCode = ExitCode.ERROR


class UsageError(ReasonError):
    """Options that cannot work together, or a value out of range."""

    exit_code = ExitCode.USAGE


class InputError(ReasonError):
    """The question or data file is empty or malformed."""

    exit_code = ExitCode.INPUT


class ModelError(ReasonError):
    """A model that cannot be found, read or loaded."""

    exit_code = ExitCode.MODEL


class CatalogError(ModelError):
    """models.yaml is invalid; the message names the file, entry and field."""


class ResourceError(ReasonError):
    """A request that cannot fit (context, sequences, memory): refused before llama.cpp aborts."""

    exit_code = ExitCode.RESOURCES


class ServerUnreachable(ReasonError):
    """A remote server that refuses connections, cannot be resolved, or does not answer in time."""

    exit_code = ExitCode.UNREACHABLE


class AuthError(ReasonError):
    """A remote server that rejects the API key (401/403)."""

    exit_code = ExitCode.AUTH


class ProtocolError(ReasonError):
    """Something answers at the URL, but not with the OpenAI-compatible API."""

    exit_code = ExitCode.PROTOCOL


class AddressError(ReasonError):
    """`reason serve` cannot listen on its address: the port is taken, or not ours to bind."""

    exit_code = ExitCode.ADDRESS


class BranchesFailed(ReasonError):
    """Every branch of a run failed (a remote server answered each generation with an error
    until the retries ran out): there was no model output to take an answer from. Not raised
    when branches generated text without an extractable answer, which is a result."""

    exit_code = ExitCode.BRANCHES_FAILED
