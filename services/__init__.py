"""The domain, framework-free: models, one module per capability, domain errors.

Nothing here imports Flask, so the HTTP API, the CLI and the scheduler share it.
"""
