"""The `diffplan` sub-commands, one module per group; `diffplan.cli` mounts them."""
