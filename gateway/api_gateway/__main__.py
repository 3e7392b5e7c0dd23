"""`python -m api_gateway`: GATEWAY_PORT, DISCOVERY_URL, TRUSTED_JWKS (tests only), GATEWAY_WORKERS, GATEWAY_ROUTES."""

from api_gateway.server import main

if __name__ == "__main__":
    main()
