"""ganrl's tests (a package, so that they import `tests.*` helpers)."""
