"""The built-in local stack: moto plus an API Gateway emulator that runs the backend.

The names the server and its controller share live here, so that ``imgup.local.control``
(imported by every command that uses a local deployment) does not import the server.
"""

HEALTH_PATH = "/_imgup/health"
STATE_FILE = "local.json"
LOG_FILE = "local.log"

# The stack's processes allocate many short-lived objects per request (moto's models and
# responses, botocore's), and Python's default cyclic collector runs every 700 of them,
# walking the older generations every tenth and hundredth time: about 1,400 collections and
# 1.4 s per 1,000 uploads and their deploy, 0.4 s of it during the uploads. Every 20,000
# allocations instead: about 45 collections, 0.1 s during the uploads (measured). Cyclic
# garbage waits at most that long; memory stays flat (bench/stack_cost.py --memory-cycles).
GC_THRESHOLDS = (20_000, 10, 10)
