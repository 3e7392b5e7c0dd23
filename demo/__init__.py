"""The seed story, told through the gateway (make demo); its client is shared with the end-to-end tests."""
