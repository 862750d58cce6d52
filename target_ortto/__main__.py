"""`python -m target_ortto` runs the target, like the `target-ortto` console script."""

from target_ortto.target import TargetOrtto

TargetOrtto.cli()
