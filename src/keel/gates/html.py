"""A gate report as one self-contained HTML page (what ``keel gates show REPORT --html OUT`` writes)."""

from __future__ import annotations

import html

from keel.gates.model import GateReport

__all__ = ["render_report"]


def render_report(report: GateReport) -> str:
    """The report's verdict and one row per test (status, value, threshold, message, evidence)."""
    rows = []
    for result in report.results:
        evidence = ""
        if result.evidence:
            columns = list(dict.fromkeys(k for row in result.evidence for k in row))
            head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(str(row.get(c, '')))}</td>" for c in columns) + "</tr>"
                           for row in result.evidence)
            evidence = f"<details><summary>evidence ({result.evidence_rows} rows)</summary><table><tr>{head}</tr>" \
                       f"{body}</table></details>"
        rows.append(f"<tr class='{result.status}'><td>{html.escape(result.name)}</td><td>{result.kind}</td>"
                    f"<td>{'required' if result.required else 'nice-to-have'}</td><td>{result.status}</td>"
                    f"<td>{html.escape(str(result.value))}</td><td>{html.escape(str(result.threshold))}</td>"
                    f"<td>{html.escape(result.message)}{evidence}</td></tr>")
    title = f"Gate report {report.id}: {report.model_ref} {report.status}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1><table><tr><th>test</th><th>kind</th><th>level</th><th>status</th>"
            f"<th>value</th><th>threshold</th><th>message</th></tr>{''.join(rows)}</table></body></html>")
