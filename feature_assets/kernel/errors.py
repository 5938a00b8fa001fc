"""One error hierarchy: every error we raise on purpose is a `FeatureStoreError`.

Each class knows two things a caller needs: whether the caller can fix it by changing what
it passed (`caller_fault`), and the HTTP status a server answers with. Servers and the CLI
map errors by class, never by builtin exception type, so a bug (a bare `KeyError` deep in
our code) is a 500 and never passes for a client error.
"""

from typing import ClassVar


class FeatureStoreError(Exception):
    """Root of the feature store's errors; an error outside this tree is a bug."""

    caller_fault: ClassVar[bool] = False
    http_status: ClassVar[int] = 500


class CallerError(FeatureStoreError):
    """The request was wrong: fix the input, not the system."""

    caller_fault = True
    http_status = 400


class FeatureDefinitionError(FeatureStoreError):
    """A feature table or service definition (dbt model + YAML meta) is invalid.

    Raised when definitions load; a server that meets it at request time was started
    with broken definitions, which is not the HTTP caller's fault (500)."""

    caller_fault = True


class FeatureReferenceError(CallerError):
    """A `table:feature` reference or service name that names no known table or feature."""


class EntityInputError(CallerError):
    """Entity rows cannot be joined or looked up: a column or key is missing, mistyped or null."""


class PartitionValidationError(FeatureStoreError):
    """A built partition broke its feature table's schema; it is not published."""

    caller_fault = True
    http_status = 422


class PartitionNotPublishedError(CallerError):
    """A partition a caller needs has not passed validation and been published."""

    http_status = 404


class TrainingSetDriftError(CallerError):
    """A partition a saved training set was built from has changed or disappeared since."""

    http_status = 409


class StoreUnavailableError(FeatureStoreError):
    """A store is unreachable, throttling beyond its retries, or missing a table: transient
    for the caller, who may retry later (503)."""

    http_status = 503


class LocalServerError(FeatureStoreError):
    """The embedded online store could not be started or stopped."""


class OnDemandFunctionError(FeatureStoreError):
    """An on-demand feature's function raised, or returned a missing output, a wrong length
    or a value of the wrong type: the definition's code is wrong, not the request (500)."""


class PushValidationError(CallerError):
    """Pushed rows broke their feature table's schema; nothing was written (400)."""


class MonitoringInputError(CallerError):
    """Values handed to drift monitoring cannot be compared (an unknown kind, a column
    declared numeric holding text, a service name that is not a file name)."""
