"""callcontrol's HTTP API (aiohttp): health, calls, flows, agents, queues, live state."""
