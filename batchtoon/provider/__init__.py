"""Talking to the provider: the API client (`api`), its request rate (`pacing`) and how a call
is tried again (`retry`).

Guarantees: every request to the API leaves through `provider.api.ApiClient`, the one place
where transport errors become batchtoon's errors; a rate is counted when a request is sent.
"""
