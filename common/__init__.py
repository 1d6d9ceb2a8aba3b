"""What the box (edge/) and the cloud (cloudsync/) both use: the wire protocol, relay framing,
SQL script splitting, logging and the version. It imports neither of them."""
