"""Dataset generation jobs, local or on Ray (issues 5 and 7)."""
