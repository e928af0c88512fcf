"""The embedded demo: small datasets of rendered moving shapes in the official on-disk formats."""
