"""tricklab's user side: the HTTP client, the `tricklab` CLI, live watch, plots and `up`.

Talks to the service over HTTP only: nothing here imports tricklab.server (a contract
checked by `lint-imports`).
"""

from tricklab.client.http import TERMINAL, ApiError, Client, ConnectionError, jobs_of

__all__ = ["TERMINAL", "ApiError", "Client", "ConnectionError", "jobs_of"]
