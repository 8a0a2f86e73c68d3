"""``make trust``: real faults and hostile inputs against the real CLI, judged from the outside.

``python -m tests.trust`` runs every case (``-k NAME`` some) and prints one row per case with four
counts that must all be 0: bumps lost, wrong pins, secrets leaked, runs left stuck. See
docs/trust.md. ``mutate.py`` beside it drives ``make mutate``.
"""
