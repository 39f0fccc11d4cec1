"""The Lambda backend: an island that imports only the standard library and boto3.

Deployed as the package ``imgup_backend`` (see docs/internals.md); every import inside it is
relative so that the same files run in Lambda and in the local stack.
"""
