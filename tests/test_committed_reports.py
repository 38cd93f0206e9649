"""The committed reports agree with themselves: each keeps the evidence it was rendered from, and each claim of the
source documents has one verdict, in the one report whose design judges it."""
from pathlib import Path

from analysis import claims

REPORTS = Path(__file__).resolve().parents[1] / "reports"
HOMES = {claim.id: claim.report for claim in claims.CLAIMS}


def committed_reports() -> list[Path]:
    return sorted(REPORTS.glob("*/report.md"))


def audit_rows(text: str) -> list[tuple[str, str]]:
    """(claim id, verdict) of every row of a report's claims-audit table."""
    if "## Claims audit" not in text:
        return []
    table = text.split("## Claims audit", 1)[1].split("\n## ", 1)[0]
    all_lines = table.splitlines()
    start = next((i for i, line in enumerate(all_lines) if line.startswith("|")), None)
    if start is None:
        return []
    lines = []   # the section's first table only (a second one lists the runs the claims did not use)
    for line in all_lines[start:]:
        if not line.startswith("|"):
            break
        lines.append(line)
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[0] == "id" and "verdict" in header, f"a claims table without claim ids: {header}"
    column = header.index("verdict")
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    return [(row[0], row[column]) for row in rows]


def test_every_committed_report_keeps_its_evidence():
    for report in committed_reports():
        assert (report.parent / "evidence" / "runs.parquet").is_file(), f"{report}: no evidence beside it"


def test_each_claim_has_one_verdict_in_its_home_report():
    verdicts: dict[str, list[str]] = {}
    for report in committed_reports():
        text = report.read_text()
        rows = audit_rows(text)
        if "## Claims audit" in text:   # an audit section judges its home claims or says it judges none
            assert rows or "No claim is judged in this report" in text, f"{report}: an empty claims audit"
        for claim_id, verdict in rows:
            assert claim_id in HOMES, f"{report}: unknown claim {claim_id}"
            if claims.base_verdict(verdict):
                assert HOMES[claim_id] == report.parent.name, \
                    f"{report} judges {claim_id}, whose home is reports/{HOMES[claim_id]}/"
                verdicts.setdefault(claim_id, []).append(report.parent.name)
    repeated = {claim_id: where for claim_id, where in verdicts.items() if len(where) > 1}
    assert not repeated, f"claims with more than one verdict row: {repeated}"


def test_the_parser_sees_a_second_verdict():
    text = ("## Claims audit\n\n| id | claim | verdict |\n|---|---|---|\n| six-x | 6x | does not hold |\n"
            "| old-fails | all fail | judged in reports/claims/ |\n\n## Next\n")
    assert audit_rows(text) == [("six-x", "does not hold"), ("old-fails", "judged in reports/claims/")]
    assert claims.base_verdict("does not hold") and not claims.base_verdict("judged in reports/claims/")
