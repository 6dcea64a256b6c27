"""Image archives: ``save`` (an OCI layout that also carries Docker's manifest.json) and
``load`` (what minibox, podman, skopeo and docker write), which reads the archive once as it
arrives (``spool``)."""

__all__ = ["load", "save", "spool"]
