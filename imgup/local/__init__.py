"""The built-in local stack: moto plus an API Gateway emulator that runs the backend."""
