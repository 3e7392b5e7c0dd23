"""catalog-service settings: the shared ones plus its database and consumer group."""

from order_contract.order import DEFAULT_ORDER_DEADLINE_SECONDS
from order_contract.topics import ORDERS_TOPIC, STOCK_DEAD_LETTER_TOPIC, STOCK_TOPIC
from servicekit.config import ServiceSettings


class CatalogSettings(ServiceSettings):
    catalog_db: str = "catalogdb"
    # Writes to the catalog (POST, PUT /catalogs) need a token with the admin role (checked with USER-SERVICE's JWKS).
    consumer_group: str = "catalog-service"
    stock_topic: str = STOCK_TOPIC
    dead_letter_topic: str = STOCK_DEAD_LETTER_TOPIC
    outcome_topic: str = ORDERS_TOPIC
    # A stock request read after its order's deadline takes no stock (order-service's expirer settles it).
    order_deadline_seconds: float = DEFAULT_ORDER_DEADLINE_SECONDS

    def transactional_id(self) -> str:
        """Stable per instance: a restarted instance fences its predecessor's open transaction."""
        return f"catalog-service:{self.instance_id}"
