"""Adapters: one external system each (Firestore, ...)."""
