"""The native launcher: starts MariaDB, Kafka, Kafka Connect and the services on this machine."""
