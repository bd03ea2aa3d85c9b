"""Explainers added as files, one each; importing this package registers every one (`sae.plugins.discover`)."""
from sae.plugins import discover

discover(__path__, __name__)
