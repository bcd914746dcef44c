"""SIP peers: pjsua2 user agents in child processes (`callcontrol dial`, and the tests)."""
