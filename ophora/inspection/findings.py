"""What ``ophora shards validate`` reports: one :class:`Finding` per problem, gathered in a
:class:`ValidationReport` that keeps the first few of each code and counts the rest."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

FINDINGS_PER_CODE = 50  # kept with their details; the rest of a code is counted (100k bad members: 50 lines + 1)


@dataclass
class Finding:
    """One problem: ``severity`` error (breaks the contract) or warning, a stable ``code``, where, and why."""

    severity: str
    code: str
    where: str
    message: str
    key: str = ""


@dataclass
class ValidationReport:
    """What validate found. ``findings`` keeps the first ``per_code`` findings of each code; ``suppressed``
    counts the rest by code, and ``error_count`` counts every error, kept or not."""

    root: str
    quick: bool
    shards: int = 0
    samples: int = 0
    decoded: int = 0
    findings: list[Finding] = field(default_factory=list)
    suppressed: Counter = field(default_factory=Counter)
    error_count: int = 0
    per_code: int = FINDINGS_PER_CODE
    _kept: Counter = field(default_factory=Counter, repr=False)

    def add(self, *findings: Finding) -> None:
        for f in findings:
            self.error_count += f.severity == "error"
            if self._kept[f.code] < self.per_code:
                self._kept[f.code] += 1
                self.findings.append(f)
            else:
                self.suppressed[f.code] += 1

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.error_count

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def summary_rows(self) -> list[tuple[str, str, str, str]]:
        """One row per code whose findings were not all kept: how many more there are."""
        return [
            ("...", code, "", f"{n} more {code} findings not listed") for code, n in sorted(self.suppressed.items())
        ]

    def to_json(self) -> str:
        return json.dumps(
            {
                "root": self.root,
                "quick": self.quick,
                "ok": self.ok,
                "shards": self.shards,
                "samples": self.samples,
                "decoded": self.decoded,
                "errors": self.error_count,
                "findings": [asdict(f) for f in self.findings],
                "suppressed": dict(self.suppressed),
            },
            indent=2,
        )


def findings_rows(report: ValidationReport) -> list[tuple[Any, ...]]:
    return [(f.severity, f.code, f.where, f.message) for f in report.findings] + report.summary_rows()
