"""Readable (human) renderings of an investigation."""

from __future__ import annotations

from datetime import datetime

from rootcause.investigation import Investigation
from rootcause.proposal import Proposal


def render_investigation(
    result: Investigation, *, since: datetime | None = None, until: datetime | None = None
) -> str:
    lines: list[str] = []
    window = f"{since.isoformat() if since else 'beginning'} .. {until.isoformat() if until else 'end'}"
    lines.append(f"restartguard investigation ({window})")
    if result.coverage:
        lines.append("read:")
        for c in result.coverage:
            span = (
                f"{c.first.isoformat()} .. {c.last.isoformat()}" if c.first and c.last else "no time covered"
            )
            note = f"  ({c.problem})" if c.problem else ""
            lines.append(f"  {c.label}: {c.read} records read, {c.understood} understood, {span}{note}")
    if not result.restarts:
        lines.append("No restarts found.")
    else:
        counts = ", ".join(f"{c}={n}" for c, n in sorted(result.by_cause().items()))
        lines.append(f"{len(result.restarts)} restart(s): {counts}")
    for i, r in enumerate(result.restarts, 1):
        lines.append("")
        check = f"check #{r.last_check}" if r.last_check is not None else "no check # seen"
        planned = "planned" if not r.unplanned else "UNPLANNED"
        lines.append(
            f"[{i}] {r.at.isoformat()}  cause={r.cause.value} ({planned}); previous process: {check}"
        )
        if r.traceback is not None:
            lines.append(f"    exception: {r.traceback.exception}  (signature {r.traceback.signature})")
        for ev in r.evidence:
            lines.append(f"    - {ev}")
        if r.proposal is not None:
            lines += proposal_lines(r.proposal)
    for warning in result.warnings:
        lines.append(f"WARNING: {warning}")
    lines.append("")
    if result.escalation.required:
        lines.append("ESCALATE to the owner: " + ", ".join(result.escalation.reasons))
    else:
        lines.append("No escalation required.")
    return "\n".join(lines)


def proposal_lines(proposal: Proposal) -> list[str]:
    rendered = proposal.render("en")
    out = [f"    proposal: {rendered.summary}"]
    out += [f"      evidence: {e}" for e in rendered.evidence]
    out += [f"      step {i}: {s}" for i, s in enumerate(rendered.steps, 1)]
    if rendered.diff:
        out += ["      diff sketch (not applied):", *(f"        {ln}" for ln in rendered.diff.splitlines())]
    return out
