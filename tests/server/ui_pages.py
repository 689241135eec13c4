"""Reading the UI's server-rendered pages in tests: fetch one as a browser would, and cut out a section or a row."""

from __future__ import annotations

from fastapi.testclient import TestClient

HTML = {"accept": "text/html"}


def get_page(client: TestClient, path: str) -> str:
    """The page at ``path``; it must answer 200 without a traceback."""
    response = client.get(path, headers=HTML)
    assert response.status_code == 200, (path, response.text[:800])
    assert "Traceback" not in response.text
    return response.text


def section(page: str, id_: str) -> str:
    """The ``<section>`` whose id is ``id_`` (up to its end)."""
    start = page.index(f'id="{id_}"')
    return page[start:page.index("</section>", start)]


def row(page: str, attribute: str, value: str) -> str:
    """The table row carrying ``attribute="value"``."""
    start = page.index(f'<tr {attribute}="{value}"')
    return page[start:page.index("</tr>", start)]
