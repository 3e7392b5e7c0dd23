"""The stack described once: its settings (.env and the layout), each component's MariaDB account and Kafka
principal with their rights (access), the Python deployables (deployables), Kafka Connect's connectors
(connectors) and the topics (topics). The native launcher (infra/launcher) starts the stack from it; compose's
one-shots (infra/containers, docker-compose.yml) render and make the same things from it, and tests/compose holds
docker-compose.yml to it. It starts nothing itself."""
