"""user-service settings: the shared ones (servicekit) plus its own database, its first admin and login limits."""

from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

from servicekit.config import ServiceSettings

APP_NAME = "USER-SERVICE"
ORDER_SERVICE_APP = "ORDER-SERVICE"


class UserServiceSettings(ServiceSettings):
    users_db: str = "userdb"
    # The only copy of the token signing keys (made at first start, mode 0600; `python -m user_service rotate-key`).
    signing_keys_file: Path = Path(".stack/user-service/signing-keys.json")
    jwt_ttl_seconds: int = 86400
    # The first admin's e-mail, for `python -m user_service create-admin` (`make up` runs it when `.env` sets
    # ADMIN_EMAIL). Signing up or logging in with it gives no role.
    admin_email: str | None = None
    # A user page waits at most this long for order-service before answering without orders: past the list's own
    # cap on reaching its sync point (order-service's READ_SYNC_TIMEOUT_SECONDS, 1.5 s), with room for its query.
    orders_timeout_seconds: float = 3.0

    # Failed logins within `login_window_seconds` before the account or the client address is locked;
    # each further lock doubles, from `login_lock_seconds` up to `login_max_lock_seconds`.
    login_failures_per_account: int = 5
    login_failures_per_address: int = 20
    login_window_seconds: float = 60.0
    login_lock_seconds: float = 30.0
    login_max_lock_seconds: float = 900.0
    # The peers whose X-Forwarded-For is believed, and then only its last hop (the one the gateway added): the
    # gateway's address. Natively that is loopback, which every local process shares; compose sets the gateway's.
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = (IPv4Network("127.0.0.1/32"), IPv6Network("::1/128"))
    # Proxies named instead (compose: `gateway`, whose address the engine assigns), looked up again after this long.
    trusted_proxy_names: tuple[str, ...] = ()
    trusted_proxy_refresh_seconds: float = 30.0

    @property
    def key_activation_seconds(self) -> float:
        """A new key signs only after every verifier has had two chances to fetch it."""
        return 2 * self.token_trust_refresh_seconds
