"""The audit trail: append-only, keyed hash chains written in the caller's transaction
(`chain`), the audit key (`key`), and the seals an auditor keeps outside the database
(`anchors`)."""
