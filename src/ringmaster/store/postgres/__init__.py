"""Everything PostgreSQL-specific of the store: its schema, its statements, its connection."""
