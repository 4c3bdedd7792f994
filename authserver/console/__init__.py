"""The admin console at ``/admin``: server-rendered pages over what ``charter clients``,
``users``, ``keys``, ``consents``, ``tokens`` and ``audit`` do, for administrators only; every
change is a confirmed, CSRF-protected form post recorded in the audit trail with the admin as
actor (S93)."""
