"""Privacy: retention, data-subject requests (export, erase) and their audit trail."""
