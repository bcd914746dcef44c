"""Real SIP peers for tests and tools: pjsua2 user agents in child processes, sipp runs."""
