"""The LiteLLM gateway: config generation (pure) for the gateway component and its tests."""
