"""Whether a failure is worth retrying, decided in one place by the exception's type.

Our own errors say it with a ``permanent`` attribute set by their type or by the code
that classified the cause (``SourceUnavailable`` and a lake outage are not permanent; a
404, a refused password or a failed check are). A library's exception is transient when
it is one of the types below: a connection, a timeout, a throttle or a server error.
Everything else is permanent: retrying a bug or a bad setting only repeats it.
"""

from __future__ import annotations

import functools


def is_transient(exc: BaseException) -> bool:
    """True when trying the same thing again may succeed."""
    permanent = getattr(exc, "permanent", None)
    if isinstance(permanent, bool):
        return not permanent
    return isinstance(exc, _transient_types())


@functools.cache
def _transient_types() -> tuple[type[BaseException], ...]:
    # Imported on first failure: the libraries are heavy and the code location must load fast.
    import smtplib

    import requests
    import urllib3.exceptions as urllib3_errors
    from google.api_core import exceptions as google_errors
    from google.auth import exceptions as auth_errors

    return (
        ConnectionError,
        TimeoutError,
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        urllib3_errors.TimeoutError,
        urllib3_errors.ProtocolError,
        urllib3_errors.NewConnectionError,
        google_errors.TooManyRequests,
        google_errors.ServerError,
        google_errors.RetryError,  # google-cloud-storage's own retry ran out of time
        auth_errors.TransportError,
        smtplib.SMTPServerDisconnected,
        smtplib.SMTPConnectError,
    )
