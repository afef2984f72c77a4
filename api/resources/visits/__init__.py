"""The visits resources."""
