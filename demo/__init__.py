"""The seed story, told through the gateway (make demo)."""
