"""Time-driven work: the APScheduler set-up and the jobs it ticks.

Runs in-process under `make run` and as its own process in production
(`flask --app wsgi scheduler run`); the app processes under gunicorn never start it.
"""
