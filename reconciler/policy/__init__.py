"""Tag policies and gates: which of a repository's tags to pin, and when a new image may land.

Pure: ``annotations`` reads the ``streamlock.dev/*`` annotations of a tag into values,
``tags`` chooses among a listing, ``gates`` decides minimum age and promotion soaks from times
kept in Git. The registry listing lives in the registry shell; the planner joins them.
"""
