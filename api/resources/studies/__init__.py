"""The studies resources."""
