"""Who may change what: the rules of ``check-access`` and the CODEOWNERS file, both pure.

In OpenShift, project permissions decide who may tag into a stream and who may pull from it. In
Git the pull request is the gate: ``access:`` in ``streamlock.yaml`` names each namespace's
owners and pullers, ``configOwners`` the owners of the file itself. :mod:`.rules` judges a pull
request from facts the shell read out of Git; :mod:`.codeowners` renders the file that makes the
forge ask those owners for review.
"""
