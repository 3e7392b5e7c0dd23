"""The order contract: what order-service, catalog-service, the JDBC sink and the launcher agree on.

- `order`: the Order type, its statuses and the rules every order obeys (`validated`);
- `topics`: the topic names, dead-letter topics included;
- `connect_record`: the record on `orders` (Kafka Connect JSON with its schema, read by the JDBC sink);
- `stock_request`: the record on `example-catalog-topic` (plain camelCase JSON, read by catalog-service);
- `catalog_change`: the record on `catalog-changes` (a product's row from the catalog-source connector);
- `table`: an order as table columns (mydb.orders, catalog-service's ledger);
- `timestamps`: the two ways the wire formats write a moment (epoch milliseconds, ISO-8601 with `Z`).

The field list is written once, in `Order`; the wire formats and the row mapping walk its fields.
"""
