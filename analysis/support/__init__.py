"""Support tiers (the 01 report): ticket durations on the calendar and business clocks, SLA,
CSAT, escalations, agent workload and backlog, Erlang C staffing and the before/after comparison."""
