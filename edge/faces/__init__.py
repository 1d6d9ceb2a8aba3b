"""Face recognition on the box: detect, check quality, align, embed, match, liveness.

Entry point for other capabilities: :class:`edge.faces.pipeline.FacePipeline`, reachable in
the daemon as ``box.service("faces").pipeline``. Templates and face photos never leave the box.
"""
