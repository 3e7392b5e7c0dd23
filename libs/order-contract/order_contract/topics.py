"""The topics of the order flow (the launcher, compose and the connector config create and name these)."""

# order-service -> JDBC sink -> mydb.orders (Kafka Connect JSON; key = order id)
ORDERS_TOPIC = "orders"
# records the sink cannot write, with Connect's __connect.errors.* headers
ORDERS_DEAD_LETTER_TOPIC = "orders-dlq"
# order-service -> catalog-service: take stock for a PENDING order (plain JSON; key = product id)
STOCK_TOPIC = "example-catalog-topic"
# stock requests catalog-service cannot read, with an error.message header
STOCK_DEAD_LETTER_TOPIC = "example-catalog-topic-dlq"
# catalog-source (Debezium, binlog CDC) -> every order-service instance's catalog read model: one compacted
# record per product (key = product id; value = the row as Connect JSON, without stock; null when deleted)
CATALOG_CHANGES_TOPIC = "catalog-changes"

# order-service instances -> each other: the first claim of an order id (an Idempotency-Key) on its partition
# decides which body is that order (plain JSON {"orderId","productId","qty","instance"}; key = order id)
ORDER_CLAIMS_TOPIC = "order-claims"
# Claims decide within this window (the topic's retention); older keys are decided by the order's row.
ORDER_CLAIMS_RETENTION_MS = 3_600_000
# The JDBC sink connector that writes `orders` into mydb.orders (infra/connect/orders-sink.json), and its consumer
# group (Connect names it connect-<connector>): the group's committed offsets say how far the table shows `orders`.
ORDERS_SINK_CONNECTOR = "orders-sink"
ORDERS_SINK_GROUP = f"connect-{ORDERS_SINK_CONNECTOR}"

DATA_TOPICS = (ORDERS_TOPIC, STOCK_TOPIC)
DEAD_LETTER_TOPICS = (ORDERS_DEAD_LETTER_TOPIC, STOCK_DEAD_LETTER_TOPIC)
