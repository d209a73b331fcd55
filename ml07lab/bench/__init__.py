"""Benchmarks: speed and memory are measured here, never asserted in tests.

`make bench` runs `runner.run_bench()` over fixed workloads (`stages.py`), normalises
each figure by references measured in the same run (`measure.py`), writes
reports/bench.json and prints a table (`report.py`). `make bench FULL=1 PROFILE=P` adds
every notebook cold and warm (`lab.py`); `tools/update_timings.py` rewrites the docs'
timing tables from that (`docs.py`). `ml07lab bench --compare OLD NEW` prints ratios.
Nothing is imported eagerly: `import ml07lab.bench` costs nothing.
"""
