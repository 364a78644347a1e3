"""Approvals: who may approve a rollback, how many must, and until when."""
