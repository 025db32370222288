"""bhavstore: a Python client for the bhavstore feature server.

>>> from bhavstore import Client
>>> client = Client(flight="grpc://127.0.0.1:50051", http="http://127.0.0.1:8080",
...                 username="quant", password="...", token="...")
>>> training = client.get_historical_features(entity_df, ["price_features:sma_20"])

See :class:`Client` and the README.
"""

from . import errors as _errors
from .client import Client, FeatureView, OnlineResponse, Subscription
from .errors import (
    AuthenticationError,
    BhavstoreError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    PushRejectedError,
    QueryTimeoutError,
    ResourceExhaustedError,
    ServerError,
    ServiceUnavailableError,
    StreamDroppedError,
)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "FeatureView",
    "OnlineResponse",
    "Subscription",
    *_errors.__all__,
    "__version__",
]
