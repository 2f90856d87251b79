"""Use cases composed from the pure domain and the adapters."""
