"""Image archives: ``save`` (OCI layout + Docker manifest.json) and ``load`` (what minibox,\npodman, skopeo and docker write)."""
