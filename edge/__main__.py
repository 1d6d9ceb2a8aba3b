"""``python -m edge`` runs the qilu-edge command line."""

from edge.cli import main

main()
