"""Test data per capability, built through the services so it is valid and audited."""
