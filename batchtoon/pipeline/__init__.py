"""One run: the stages (intake, submit workers, the poller, downloaders), the tickets they get
and the outcomes they hand on, and the one owner of every item's state: the state machine.

Guarantees: a stage gets an immutable ticket, computes an outcome and delivers it; it never
writes the journal, never sees the ledger's live entries or the machine, and never calls another
stage. Data flows one way: stage -> outcome -> `driver.Driver` -> `machine.Machine.step` (pure:
records and tickets) -> journal, then queues -> stage. Only the machine decides what an outcome
means (stale, expired, submitted again or failed); only the driver writes item records.
"""
