"""In-memory fakes that ship beside the real thing, for unit tests and the flow simulator."""
