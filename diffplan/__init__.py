"""The `diffplan` command line: one Typer app that mounts each package's sub-app."""
