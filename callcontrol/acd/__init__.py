"""The ACD: agents, queues, routing, callbacks and queue statistics (issue 4).

``agents`` (state machine), ``queues`` (waiting lines), ``strategies``, ``router`` (the ``Acd``
object and its router task), ``callback`` (callback tasks), ``connect`` (a caller's stay in a
queue, run in the caller's task), ``events`` (domain events posted to call tasks), ``stats``;
after a daemon restart ``adopt`` (queue callers and agents taken back) and ``callback_store``
(pending callbacks put back in line).
"""
