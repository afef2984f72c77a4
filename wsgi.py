"""What gunicorn and `flask --app wsgi` load.

Loading it never starts the scheduler under gunicorn (web workers only serve); `flask
--app wsgi run` and `serve` start it in-process when DCT_SCHEDULER_ENABLED is true, and
production runs `flask --app wsgi scheduler run` as its own process.
"""

from api import create_app

app = create_app()
