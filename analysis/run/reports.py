"""The reports the suite runs: notebook name, title, the question it answers, tables it needs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Report", "REPORTS", "NOTEBOOK_DIR", "PROJECT_ROOT", "report_by_name"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    answers: str
    needs: tuple[str, ...] = ()  # tables without which the report is skipped
    path: Path | None = None  # default: notebooks/NAME.ipynb
    # relative run time on a large client base (seconds at 1M clients, docs/benchmarks.md): the
    # runner starts the longest first, so that two workers finish close together
    weight: int = 1

    @property
    def notebook(self) -> Path:
        return self.path or NOTEBOOK_DIR / f"{self.name}.ipynb"

    def missing(self, present: set[str]) -> list[str]:
        return [t for t in self.needs if t not in present]


REPORTS: tuple[Report, ...] = (
    Report("00_data_quality", "Data quality",
           "What data came in, which period it covers, what was set aside and why, and where it is thin.", weight=30),
    Report("01_support_tiers", "Support tiers",
           "How fast each support line answers and resolves, how satisfied clients are, where tickets "
           "escalate, how loaded agents are, and what changed between two periods.", needs=("tickets",), weight=50),
    Report("02_cohort_ltv", "Cohort LTV",
           "What a paying client is worth by cohort and age, and whether early support contacts pay more: "
           "the naive split beside fairer comparisons.", needs=("clients", "payments"), weight=45),
    Report("03_churn_survival", "Churn and survival",
           "How many clients leave after the first month, how long clients stay, and how much support contact "
           "reduces churn once immortal time and confounding are handled.", needs=("clients", "payments"), weight=35),
    Report("04_winback_retention", "Win-back, saves and early warning",
           "How many dormant clients come back and through which channel, how many refund demands are kept, "
           "and which active accounts are sliding before the trigger fires.", needs=("clients", "payments"), weight=40),
    Report("05_onboarding_revenue", "Onboarding and support revenue",
           "Whether reaching new registrations pays off (reached, paid, how fast, how much), and the source's "
           "support revenue share with its caveats.", needs=("clients", "payments"), weight=20),
    Report("06_contact_centre_economics", "Contact centre economics",
           "What the same outsourced calls cost under each pricing model, CPA, ROI and break-even conversion per "
           "vendor, the source's case recomputed, and a pilot read-out.", needs=("leads", "calls"), weight=10),
    Report("07_sales_conveyor", "Sales conveyor",
           "Stage-by-stage conversion and timing of the sales conveyor, successful calls per operator against the "
           "target, the value of the clients it brought, and where the loss of leads changed lately.",
           needs=("leads", "calls"), weight=25),
)


def report_by_name(name: str) -> Report:
    for r in REPORTS:
        if r.name == name:
            return r
    raise KeyError(name)
