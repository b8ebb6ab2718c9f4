"""What survives a run: the JSON-lines journal (`journal`) and its records folded into one entry
per item (`ledger`), and the run's log beside it (`logs`).

Guarantees: every state change is appended (and, where it matters, fsync'd) before the item
moves on; replaying the journal gives the same ledger, whatever line a crash cut short.
"""
