"""The call model: one task per call owns its state.

inbox.py     the typed inbox messages (PBX events, ACD messages, aborts) and an inbox reader
context.py   the call context port the flow engine and the ACD see; the deadline wait and the
             media wait (stopped at its deadline); the one playback-id scheme
router.py    channel id -> the inbox of the call owning it; unowned events to a fallback
session.py   one call's state, its lifecycle as one transition table, its view of the PBX (a
             service call, for feature codes and ACD callbacks, is a session with no row)
manager.py   starts, adopts, aborts and drains call and service-call tasks; a new channel's
             first event
"""
