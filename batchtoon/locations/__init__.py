"""Where photos come from and results go: local paths or fsspec URLs (`storage`), SOURCE
arguments walked lazily (`sources`), output names (`layout`), result files (`results`) and
whole-file writes (`files`).

Guarantees: every output stays inside the output location; a file is written whole or not at
all; a folder is walked lazily, never held in memory whole.
"""
