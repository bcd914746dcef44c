"""The load bench (``make bench``, ``make soak``): the same hotline run by pure dialplan and by
callcontrol, on one bench Asterisk (free ports, its own instance, a wide RTP range).

Callers are one sipp UAC per step (``bench/sipp/caller.xml``: a-law audio, RFC 2833 digit 1
at 1.5 s, wait for the BYE); agents are sipp UAS processes of 100 headsets each
(``bench/sipp/agent.xml``: answer at once, talk, hang up). Each side runs steps of calls per
second and reports, per step, what DECISIONS.md "Bench results" lists, plus the Asterisk-side
count of calls checked against the daemon's rows; results go to
``bench/results/<UTC timestamp>.json`` with a chart beside it. ``bench.soak`` runs the
callcontrol side for a long time and checks that nothing grows.
"""
