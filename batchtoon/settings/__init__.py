"""Settings (`config`) and the nine styles (`styles`).

Guarantees: a value is checked the same way whether it comes from a file, a variable, a flag
or code, and an error names where the value came from.
"""
