"""The project file: one SQLite database per project, its numbered migrations and schema guard."""
