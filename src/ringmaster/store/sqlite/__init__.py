"""The SQLite backend: the schema and its migrations, every statement, the connection."""
