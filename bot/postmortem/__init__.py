"""Postmortems: blameless draft reports written from the incident's timeline and rows."""
