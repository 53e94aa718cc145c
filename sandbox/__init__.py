"""The outside world for tests and the demo: BIND, a Kong emulator, runtimes A and B. The product never imports it."""
