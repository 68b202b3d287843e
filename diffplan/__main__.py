"""`python -m diffplan`: the `diffplan` command line."""

from diffplan.cli import app

app(prog_name="diffplan")
