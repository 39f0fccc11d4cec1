"""The built-in local stack: moto plus an API Gateway emulator that runs the backend.

The names the server and its controller share live here, so that ``imgup.local.control``
(imported by every command that uses a local deployment) does not import the server.
"""

HEALTH_PATH = "/_imgup/health"
STATE_FILE = "local.json"
LOG_FILE = "local.log"
