"""The notifications resources."""
