"""The audit resources."""
