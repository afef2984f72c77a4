"""Validation evidence: requirement ids, the tests that carry them, and docs/compliance.md."""
