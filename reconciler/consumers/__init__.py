"""Consumers: manifests that follow the locks, as OpenShift's image triggers and lookup policy do.

Pure modules (no I/O): ``source`` (a YAML/JSON file with where each scalar was written, and the
byte-exact splice of new values), ``triggers`` (the ``image.openshift.io/triggers`` annotation,
DeploymentConfig and BuildConfig ImageChange triggers), ``setters`` (``$imagestream`` line
comments and Containerfile ``FROM`` lines), ``kustomize`` (``images:`` entries), ``scan`` (one
file → its slots, and the rewrite of a file to given pins), ``controller`` (the pass: consumer
edits joined to the lock commits, repair commits), ``render`` (lookup policy). The shell that
finds and reads consumer files is ``reader``.
"""
