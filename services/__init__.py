"""The domain, framework-free: a small shared kernel (db, errors, actor, access, clock,
validation, crypto, passwords, models) and one package per capability, each with its
models. Nothing here imports Flask, so the HTTP API, the CLI and the scheduler share it.
"""
