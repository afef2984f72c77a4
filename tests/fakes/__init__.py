"""Real servers standing in for the outside world: Twilio, S3 and SMTP on localhost."""
