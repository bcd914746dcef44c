"""The interaction store: journal, single database writer, tables, migrations and queries."""
