"""user-service: registration, login with a JWT, and users shown with their orders from order-service."""
