"""Studies and their sites: the tenants that scope every other record."""
