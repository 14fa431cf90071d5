"""The outside world behind small interfaces: clock now; vein readers, LDAP and counters next."""
