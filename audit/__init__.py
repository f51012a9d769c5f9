"""The append-only audit trail: who changed what, when, and under which correlation id."""
