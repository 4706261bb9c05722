"""Clients and money (reports 02-05): cohorts and LTV, churn and survival, first contact with
support and its effect, dormancy and win-back, refund saves, onboarding and revenue share."""
