"""The residents' H5 site served by the box at /r/ (reports, one-tap repair, status)."""
