"""Incidents: one degradation of one model, from detection to resolution."""
