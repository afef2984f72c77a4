"""The diagnostics resources."""
