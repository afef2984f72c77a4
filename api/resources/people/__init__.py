"""The people resources."""
