"""What gunicorn and `flask --app wsgi` load."""

from api import create_app

app = create_app()
