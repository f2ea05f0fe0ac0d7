"""modelreg's web UI: server-rendered pages over the Python client, no state of its own."""
