"""The epro resources."""
