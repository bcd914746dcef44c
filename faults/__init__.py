"""Fault injection under load (``make faults``, ``python -m faults``).

A steady stream of sipp callers (digest auth, the bench hotline: answer, prompt, digit 1,
queue, a sipp agent answers, talk, the caller hangs up) runs against a bench Asterisk and the
daemon (store on a private PostgreSQL). During the stream each fault is injected in turn:

    restart_asterisk  Asterisk stopped and started again (agents re-register if needed)
    kill_asterisk     Asterisk SIGKILLed and started again
    kill_daemon       SIGKILL of the daemon; the harness, as its supervisor, starts it again
                      0.2 s after the death and logs the agents back in
    stop_daemon       SIGSTOP of the daemon, SIGCONT after a while (the same process)
    stop_database     the PostgreSQL server stopped for a while, then started again
    cut_ari, cut_ami  the daemon's ARI (WebSocket and HTTP) or AMI link cut at a TCP proxy the
                      harness controls (faults/proxy.py): connections reset, new ones
                      refused for a while, then restored
    journal_full      the journal's tmpfs (faults/diskfull.py) filled for a while, then freed
    hang_then_kill_daemon (not in the default list) SIGSTOP for 2 s, then SIGKILL: callers
                      reach the app while the daemon reads nothing

Afterwards every call sipp placed is matched by its SIP Call-ID to the daemon's call rows and
the result is written to ``faults/results/<UTC timestamp>.json`` (see :mod:`faults.tally`).
"""
