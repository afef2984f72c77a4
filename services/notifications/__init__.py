"""Reminders and account messages: SMS planned into an outbox by rules, sent inside
sending hours through a gateway, and the replies and status callbacks Twilio brings
back; account e-mails beside them."""
