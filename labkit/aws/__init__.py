"""Where AWS calls go: the Backend interface and its registry, the real-AWS backend, tags, IAM actions, errors.

The bottom layer: everything above gets its boto3 clients from a Backend; nothing here imports the layers
above it.
"""
