"""Test actors and a worker entry point for the runtime's tests (no domain logic here)."""
