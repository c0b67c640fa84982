"""Integration suites: strangler in front of real third-party servers over 127.0.0.1."""
