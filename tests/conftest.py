"""Test tiers: tests/unit (pure, milliseconds), tests/integration (the launched platform on the
real emulators, over HTTP), tests/platform (make run and process lifetimes)."""
