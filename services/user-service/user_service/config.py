"""user-service settings: the shared ones (servicekit) plus its own database and how long to wait for orders."""

from servicekit.config import ServiceSettings

APP_NAME = "USER-SERVICE"
ORDER_SERVICE_APP = "ORDER-SERVICE"


class UserServiceSettings(ServiceSettings):
    users_db: str = "userdb"
    # user-service signs the tokens, so it cannot start without the secret.
    jwt_secret: str
    # A user page waits at most this long for order-service before answering without orders.
    orders_timeout_seconds: float = 2.0
