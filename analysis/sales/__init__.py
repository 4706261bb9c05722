"""Outsourced calling and the conveyor sales department (reports 06-07)."""
