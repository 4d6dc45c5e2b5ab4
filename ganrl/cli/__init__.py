"""Command-line flags of the entry points (absl), apart from the library.

Only entry points (`experiment_*/main_*.py`, `process_data.sh`) import these modules: each
defines its flags when imported, and no module of the library imports them, so importing
ganrl defines no flag. A module here turns its flags into the library's frozen configs.
"""


def register_seed_list(name: str = "seeds") -> None:
    """Makes the list flag `name` accept only non-negative integers (absl then reports
    another value as a flag error naming it)."""
    from absl import flags

    flags.register_validator(
        name,
        lambda values: bool(values) and all(v.strip().isdigit() for v in values),
        message=f"--{name}: expected comma-separated non-negative integers, e.g. 0,1,2",
    )


def changed_settings(settings: dict, defaults: object) -> tuple[tuple[str, object], ...]:
    """`(field, value)` of the `settings` (field -> value) whose value differs from that
    field of the config `defaults`, in the order of `settings`."""
    return tuple(
        (name, value) for name, value in settings.items() if value != getattr(defaults, name)
    )
