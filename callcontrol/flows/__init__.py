"""IVR flows: the YAML language, its checker and its engine."""
