"""The ACD: agents, queues, routing, callbacks and queue statistics (issue 4).

``agents`` (state machine), ``queues`` (waiting lines), ``strategies``, ``router`` (the ``Acd``
object and its router task), ``callback`` (callback tasks, on service calls), ``feature_codes``
(headset codes, on service calls), ``connect`` (a caller's stay in a queue, run in the caller's
task), ``events`` (domain events posted to call tasks), ``stats``, ``roster`` and ``directory``
(agents on the daemon), ``service`` (lifecycle wiring); after a daemon restart ``adopt`` (queue
callers and agents taken back) and ``callback_store`` (pending callbacks put back in line).
"""
