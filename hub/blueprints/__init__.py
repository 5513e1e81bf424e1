"""One blueprint per feature of the hub."""
