"""The read-only web view: the same pages served by the daemon at ``/ui/`` and written as a
static site by ``streamlock report --html DIR``.

``model`` builds view data (pure), ``graph`` lays out promotion paths with Graphviz, ``pages``
renders Jinja2 templates, ``report`` writes the static site.
"""
