"""The HTTP-to-DICOM gateway: where http/ and net/ meet.

config.py reads Harmony's config.toml and pipelines/*.toml into a validated GatewayConfig;
the rest of the package routes HTTP requests on each endpoint's path prefix to a DIMSE
operation on the pipeline's DICOM backend and maps failures to HTTP statuses.
"""
