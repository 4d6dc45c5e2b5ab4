"""Command-line flags of the entry points (absl), apart from the library.

Only entry points (`experiment_*/main_*.py`, `process_data.sh`) import these modules: each
defines its flags when imported, and no module of the library imports them, so importing
ganrl defines no flag. A module here turns its flags into the library's frozen configs.
"""
