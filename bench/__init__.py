"""Benchmarks of the Pulumi program, kept apart from the tests.

`python -m bench` (`make bench`) measures orchestration: parallel builds,
no-op runs and graph size, against a plain buildctl script and `buildx bake`.
It writes bench/results.json and rewrites its own section of BENCHMARKS.md,
which `python -m bench.report` renders again from a results file.
`python -m bench.cache_bench` (`make bench-cache`) compares cache backends.
"""
