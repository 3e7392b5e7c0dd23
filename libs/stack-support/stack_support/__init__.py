"""What the suites, the demo, chaos and the benchmarks share against a running stack (not part of it: the launcher
starts the stack, this package talks to it).

- `api_client`: the client of the public HTTP API, through the gateway only (`GatewayClient`);
- `catalog_views`: what each order-service instance prices products at, and products of a caller's own in catalogdb;
- `side_stack`: a second native stack beside `make up`'s (tests/cluster, bench/cluster_throughput.py).
"""
