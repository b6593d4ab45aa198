"""Model fusion: K models trained apart, interpolated pair by pair and averaged (``python -m fedtna.lmc``)."""
