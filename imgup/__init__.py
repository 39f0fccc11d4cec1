"""imgup: deploy and use a serverless image-upload backend, on AWS or on a built-in local stack."""

__version__ = "0.1.0"
