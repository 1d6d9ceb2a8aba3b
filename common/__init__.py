"""What the box (edge/) and the cloud (cloudsync/) both use: the wire protocol, relay framing,
SQL script splitting, logging, the version, and the report text model (features, training and
the artefact: the box runs it, the cloud retrains it). It imports neither of them."""
