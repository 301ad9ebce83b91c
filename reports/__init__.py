"""Tables, figures and ``report.md`` generated from the results store (never from models)."""
