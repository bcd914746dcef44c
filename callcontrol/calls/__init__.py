"""The call model: one task per call owns its state.

inbox.py     the typed inbox messages (PBX events, ACD messages, aborts) and an inbox reader
context.py   the call context port the flow engine and the ACD see; the deadline wait; the one
             playback-id scheme
router.py    channel id -> the inbox of the call owning it; unowned events to a fallback
session.py   one call's state, its lifecycle as one transition table, its view of the PBX
manager.py   starts, adopts, aborts and drains call tasks; a new channel's first event
"""
