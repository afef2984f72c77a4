"""The `make run` demo: one study at two Belgian sites, every role, three patients,
built through the same service functions as the API."""
