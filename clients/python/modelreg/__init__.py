"""Python client for the modelreg model registry."""
