"""The machinery the tests and the benchmarks share; not part of the package (not in the wheel).

- ``processes``: ``rearq`` worker, timer and collector processes: a pool that stops them
  quickly (tests) and a supervisor that restarts them (soak), their environment and command
  lines, and the readiness check both wait on;
- ``network``: free loopback ports, a TCP proxy that cuts or slows a service, a private
  ``redis-server``;
- ``databases``: create, recreate or drop a test or benchmark database;
- ``waiting``: ``wait_for``, the one polling loop;
- ``factories``: factory_boy factories and ReArq worker heartbeats (need Django set up).

Importable from the repository root: pytest's ``pythonpath = ["."]`` puts it on the path for
the tests; the benchmarks insert the root themselves, and child processes get it through
``processes.child_env``.
"""
