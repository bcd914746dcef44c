"""The load bench (``make bench``): the same hotline run by callcontrol and by pure dialplan.

Both sides run on one bench Asterisk (free ports, its own instance): callers are sipp UACs
(``tests/sipp/uac_auth_pcap_dtmf.xml``: answer, RFC 2833 digit 1 at 1.5 s, talk, BYE), agents
are one sipp UAS that registers every agent headset and answers each INVITE at once
(``bench/sipp/``). Each side runs steps of calls per second and reports, per step, what
DECISIONS.md "Bench results" lists; results go to ``bench/results/<UTC timestamp>.json``.
"""
