"""The browser sign-in flow: login, consent, pending requests, password change, logout, pages."""
