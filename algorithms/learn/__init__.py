"""learn stage of the DeformCast core (docs/DEVELOPING.md)."""
