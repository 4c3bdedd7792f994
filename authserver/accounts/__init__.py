"""Local user accounts: user names and argon2 passwords."""
