"""People and their access: staff accounts and patients, log-in and its lock-out,
activation and password reset, enrolment behind the consent gate, and the one rule of
what each role reads of a record (`disclosure`)."""
