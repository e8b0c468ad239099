import urllib3  # noqa: F401  (imported before sockets are disabled: its import probes for IPv6 with one)
