from diffplan.cli import app

app(prog_name="diffplan")
