"""The duration buckets of every latency histogram (RPCs served and made, the web UI's requests).

Without metrics of its own, so a process that imports it (the web UI) registers nothing else.
"""

# From a cached read (1 ms) to a multi-GiB stream or a long WatchEvents (minutes).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
