"""The consent resources."""
