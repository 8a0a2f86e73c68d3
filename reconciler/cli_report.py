"""``streamlock report --html DIR``: the web view as static files, for a CI artifact or a site.

Thin: the pages come from ``reconciler.web`` (the renderer the daemon's ``/ui/`` uses).
"""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.console import notify, repo_option, resolve_repo

COMMIT_URL_HELP = "Forge URL of a commit, with {sha} (http or https only)."
EDIT_URL_HELP = "Forge URL to edit a file, with {path} and {line} (http or https only)."


def forge_options(func: click.decorators.FC) -> click.decorators.FC:
    """``--commit-url`` and ``--edit-url``: the operator's forge link templates."""
    func = click.option(
        "--edit-url", envvar="STREAMLOCK_EDIT_URL", metavar="TEMPLATE", help=EDIT_URL_HELP
    )(func)
    return click.option(
        "--commit-url", envvar="STREAMLOCK_COMMIT_URL", metavar="TEMPLATE", help=COMMIT_URL_HELP
    )(func)


@click.command("report")
@click.option(
    "--html",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the pages into DIR (new, empty, or an earlier report).",
)
@forge_options
@repo_option
def report(
    directory: Path, commit_url: str | None, edit_url: str | None, repo: Path | None
) -> None:
    """Write the web view (streams, tags, history, promotion paths) as static HTML, offline.

    Example: streamlock report --html site --commit-url 'https://forge/org/repo/commit/{sha}'
    --edit-url 'https://forge/org/repo/edit/main/{path}#L{line}'
    """
    from reconciler.web.model import Links
    from reconciler.web.report import report as write_report

    links = Links.parse(commit_url, edit_url)
    root = resolve_repo(repo).resolve()
    written = write_report(root, directory, links)
    index = (written.directory / "index.html").resolve()
    notify(
        f"✓ {written.pages} pages for {written.streams} streams and {written.tags} tags "
        f"in {written.directory}"
    )
    click.echo(index.as_uri())


COMMANDS: list[click.Command] = [report]
