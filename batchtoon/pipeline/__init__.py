"""One run: the stages (producer, submit workers, the poller, downloaders), what they hand on
(`outcomes`), and the one owner of every item's state.

Guarantees: a stage computes an outcome and delivers it; it never writes the journal and never
calls another stage. Data flows one way: stage -> state machine -> queues -> stage.
"""
