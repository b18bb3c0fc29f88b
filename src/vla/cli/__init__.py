"""The `vla` command line: thin wiring of configs to library functions."""
